import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type ConsoleToken,
  createConsoleAuth,
  MIN_TOKEN_LENGTH,
  randomSecret,
  readCookie,
  SESSION_COOKIE,
  sameSecret,
  sessionCookie,
} from '../../../src/console/auth.ts';
import type { Principal } from '../../../src/console/model.ts';

const ADMIN_TOKEN = 'admin-token-0123456789abcdefghij';
const READ_TOKEN = 'read-token-0123456789abcdefghijk';
const tokens: ConsoleToken[] = [
  { name: 'ops', role: 'admin', token: ADMIN_TOKEN },
  { name: 'grafana', role: 'read', token: READ_TOKEN },
];
const ops: Principal = { name: 'ops', role: 'admin' };

/** A clock the test moves by hand. */
function manualClock(startMs = 1_800_000_000_000) {
  let t = startMs;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

describe('console auth - tokens', () => {
  test('auth - checkToken maps each configured token to its principal', () => {
    const auth = createConsoleAuth({ tokens });
    assert.deepEqual(auth.checkToken(ADMIN_TOKEN), { name: 'ops', role: 'admin' });
    assert.deepEqual(auth.checkToken(READ_TOKEN), { name: 'grafana', role: 'read' });
  });

  test('auth - checkToken refuses a wrong token, a prefix and a near miss', () => {
    const auth = createConsoleAuth({ tokens });
    assert.equal(auth.checkToken('not-a-token-at-all-0123456789'), undefined);
    assert.equal(auth.checkToken(ADMIN_TOKEN.slice(0, -1)), undefined);
    assert.equal(auth.checkToken(`${ADMIN_TOKEN}x`), undefined);
    assert.equal(auth.checkToken(` ${ADMIN_TOKEN}`), undefined);
    assert.equal(auth.checkToken(ADMIN_TOKEN.toUpperCase()), undefined);
  });

  test('auth - checkToken refuses empty, oversized and non-string tokens', () => {
    const long = 'a'.repeat(600);
    const auth = createConsoleAuth({ tokens: [...tokens, { name: 'long', role: 'admin', token: long }] });
    assert.equal(auth.checkToken(''), undefined);
    // Over 512 characters is refused before hashing, even when configured.
    assert.equal(auth.checkToken(long), undefined);
    assert.equal(auth.checkToken(undefined as unknown as string), undefined);
    assert.equal(auth.checkToken(42 as unknown as string), undefined);
  });

  test('auth - checkToken with no tokens configured refuses everything', () => {
    const auth = createConsoleAuth({ tokens: [] });
    assert.equal(auth.checkToken(ADMIN_TOKEN), undefined);
  });

  test('auth - randomSecret is long enough to be a token and cookie-safe', () => {
    const a = randomSecret();
    const b = randomSecret();
    assert.notEqual(a, b);
    assert.ok(a.length >= MIN_TOKEN_LENGTH);
    assert.match(a, /^[A-Za-z0-9_-]+$/);
    assert.equal(readCookie(`${SESSION_COOKIE}=${a}`, SESSION_COOKIE), a);
  });
});

describe('console auth - sessions', () => {
  test('auth - createSession returns a random id and CSRF token; getSession finds it', () => {
    const auth = createConsoleAuth({ tokens });
    const a = auth.createSession(ops);
    const b = auth.createSession(ops);
    assert.notEqual(a.id, b.id);
    assert.notEqual(a.csrfToken, b.csrfToken);
    assert.notEqual(a.id, a.csrfToken);
    assert.deepEqual(auth.getSession(a.id)?.principal, ops);
    assert.equal(auth.getSession(a.id)?.csrfToken, a.csrfToken);
    assert.equal(auth.getSession('no-such-session'), undefined);
  });

  test('auth - a session expires after the idle TTL', () => {
    const clock = manualClock();
    const auth = createConsoleAuth({ tokens, sessionTtlMs: 1000, now: clock.now });
    const s = auth.createSession(ops);
    assert.equal(s.expiresAtMs, clock.now() + 1000);
    clock.advance(1000);
    assert.equal(auth.getSession(s.id), undefined);
    // Gone for good, even if the clock went back.
    clock.advance(-500);
    assert.equal(auth.getSession(s.id), undefined);
  });

  test('auth - using a session extends its idle TTL', () => {
    const clock = manualClock();
    const auth = createConsoleAuth({ tokens, sessionTtlMs: 1000, now: clock.now });
    const s = auth.createSession(ops);
    for (let i = 0; i < 5; i++) {
      clock.advance(900);
      const got = auth.getSession(s.id);
      assert.ok(got, `still alive after ${(i + 1) * 900} ms of use`);
      assert.equal(got.expiresAtMs, clock.now() + 1000);
    }
    clock.advance(1001);
    assert.equal(auth.getSession(s.id), undefined);
  });

  test('auth - endSession ends only that session', () => {
    const auth = createConsoleAuth({ tokens });
    const a = auth.createSession(ops);
    const b = auth.createSession(ops);
    auth.endSession(a.id);
    assert.equal(auth.getSession(a.id), undefined);
    assert.ok(auth.getSession(b.id));
    auth.endSession('unknown'); // no throw
  });

  test('auth - sessions are bounded: the oldest goes first past 1000', () => {
    const auth = createConsoleAuth({ tokens });
    const created = Array.from({ length: 1001 }, () => auth.createSession(ops));
    assert.equal(auth.getSession((created[0] as { id: string }).id), undefined);
    for (const s of created.slice(1)) assert.ok(auth.getSession(s.id), 'newer sessions kept');
  });

  test('auth - expired sessions are swept when new ones are created', () => {
    const clock = manualClock();
    const auth = createConsoleAuth({ tokens, sessionTtlMs: 1000, now: clock.now });
    const old = Array.from({ length: 1000 }, () => auth.createSession(ops));
    clock.advance(2000);
    const fresh = auth.createSession(ops);
    const second = auth.createSession(ops);
    assert.ok(auth.getSession(fresh.id));
    assert.ok(auth.getSession(second.id));
    assert.equal(auth.getSession((old[999] as { id: string }).id), undefined);
  });
});

describe('console auth - login codes', () => {
  test('auth - a login code signs in once', () => {
    const auth = createConsoleAuth({ tokens });
    const code = auth.createLoginCode(ops);
    assert.match(code, /^[A-Za-z0-9_-]{32,}$/);
    assert.deepEqual(auth.redeemLoginCode(code), ops);
    assert.equal(auth.redeemLoginCode(code), undefined);
  });

  test('auth - a login code expires after its TTL and is consumed by a late try', () => {
    const clock = manualClock();
    const auth = createConsoleAuth({ tokens, loginCodeTtlMs: 60_000, now: clock.now });
    const late = auth.createLoginCode(ops);
    const onTime = auth.createLoginCode(ops);
    clock.advance(59_999);
    assert.deepEqual(auth.redeemLoginCode(onTime), ops);
    clock.advance(1);
    assert.equal(auth.redeemLoginCode(late), undefined);
    clock.advance(-30_000);
    assert.equal(auth.redeemLoginCode(late), undefined, 'an expired code is gone');
  });

  test('auth - unknown and empty codes are refused', () => {
    const auth = createConsoleAuth({ tokens });
    auth.createLoginCode(ops);
    assert.equal(auth.redeemLoginCode(''), undefined);
    assert.equal(auth.redeemLoginCode('guess'), undefined);
  });
});

describe('console auth - cookies and CSRF', () => {
  test('auth - readCookie finds its cookie among others', () => {
    assert.equal(readCookie('sy_session=abc-DEF_123', 'sy_session'), 'abc-DEF_123');
    assert.equal(readCookie('theme=dark; sy_session=abc123;lang=en', 'sy_session'), 'abc123');
    assert.equal(readCookie('  theme=dark ;  sy_session = abc123  ', 'sy_session'), 'abc123');
    assert.equal(readCookie('theme=dark; flag; sy_session=x', 'sy_session'), 'x');
  });

  test('auth - readCookie ignores other cookies, even with a similar name', () => {
    assert.equal(readCookie('theme=dark; lang=en', 'sy_session'), undefined);
    assert.equal(readCookie('xsy_session=abc; sy_session_old=def', 'sy_session'), undefined);
    assert.equal(readCookie('', 'sy_session'), undefined);
    assert.equal(readCookie(undefined, 'sy_session'), undefined);
    assert.equal(readCookie('sy_session', 'sy_session'), undefined);
  });

  test('auth - readCookie refuses malformed values', () => {
    for (const value of [
      '',
      'abc def',
      '"quoted"',
      'a,b',
      'abc=def',
      'é',
      '%41',
      'a'.repeat(129),
      'a\u0000b',
    ]) {
      assert.equal(readCookie(`sy_session=${value}`, 'sy_session'), undefined, JSON.stringify(value));
    }
    assert.equal(readCookie(`sy_session=${'a'.repeat(128)}`, 'sy_session'), 'a'.repeat(128));
  });

  test('auth - sameSecret compares exactly', () => {
    const secret = randomSecret();
    assert.equal(sameSecret(secret, secret), true);
    assert.equal(sameSecret(`${secret}`.slice(0, -1), secret), false);
    assert.equal(sameSecret(`${secret}x`, secret), false);
    assert.equal(sameSecret('', secret), false);
    assert.equal(sameSecret(undefined, secret), false);
    assert.equal(sameSecret(42 as unknown as string, secret), false);
  });

  test('auth - sessionCookie is HttpOnly, SameSite=Strict, Path=/ with Max-Age', () => {
    const cookie = sessionCookie('abc123', 3600);
    const [pair, ...attrs] = cookie.split(';').map((p) => p.trim());
    assert.equal(pair, `${SESSION_COOKIE}=abc123`);
    assert.ok(attrs.includes('HttpOnly'));
    assert.ok(attrs.includes('SameSite=Strict'));
    assert.ok(attrs.includes('Path=/'));
    assert.ok(attrs.includes('Max-Age=3600'));
    assert.equal(readCookie(cookie, SESSION_COOKIE), 'abc123');
    // Signing out: an empty value that expires at once.
    assert.match(sessionCookie('', 0), /^sy_session=; .*Max-Age=0$/);
  });
});

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Principal, Role } from './model.ts';

/**
 * Who may use the console, and how a request proves it:
 *
 * - API clients (the CLI, scripts) send `Authorization: Bearer <token>`. Browsers never attach
 *   that header by themselves, so such requests cannot be forged cross-site.
 * - Browsers sign in once with a token (or the one-time link `switchyard up` prints) and get a
 *   session cookie: HttpOnly, SameSite=Strict, random, kept in memory (a restart signs everyone
 *   out). A state-changing request on a session must also carry the session's CSRF token in
 *   `X-CSRF-Token` (or the `csrf` form field), and its Origin, when sent, must be this console.
 *
 * Tokens are compared as SHA-256 digests in constant time; they are never logged.
 */

export interface ConsoleToken {
  name: string;
  role: Role;
  token: string;
}

export interface Session {
  id: string;
  principal: Principal;
  csrfToken: string;
  expiresAtMs: number;
}

export interface AuthOptions {
  tokens: readonly ConsoleToken[];
  /** Idle sessions end after this long. */
  sessionTtlMs?: number;
  /** One-time sign-in links stay valid this long. */
  loginCodeTtlMs?: number;
  now?: () => number;
}

export const SESSION_COOKIE = 'sy_session';
/** Tokens shorter than this are refused at start: they could be guessed. */
export const MIN_TOKEN_LENGTH = 24;
const DEFAULT_SESSION_TTL_MS = 12 * 3_600_000;
const DEFAULT_LOGIN_CODE_TTL_MS = 15 * 60_000;
/** Bounds memory however many sign-ins happen; the oldest session goes first. */
const MAX_SESSIONS = 1000;

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** A new random secret (tokens, session ids, CSRF tokens, login codes): 32 bytes, base64url. */
export function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}

export interface ConsoleAuth {
  /** The principal of a bearer token, or undefined. */
  checkToken(token: string): Principal | undefined;
  createSession(principal: Principal): Session;
  /** The live session with this id (its idle timer restarted), or undefined. */
  getSession(id: string): Session | undefined;
  endSession(id: string): void;
  /** A one-time code that signs in as `principal` once, within the code TTL. */
  createLoginCode(principal: Principal): string;
  redeemLoginCode(code: string): Principal | undefined;
}

export function createConsoleAuth(opts: AuthOptions): ConsoleAuth {
  const now = opts.now ?? Date.now;
  const sessionTtlMs = opts.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
  const loginCodeTtlMs = opts.loginCodeTtlMs ?? DEFAULT_LOGIN_CODE_TTL_MS;
  const tokens = opts.tokens.map((t) => ({
    digest: digest(t.token),
    principal: { name: t.name, role: t.role },
  }));
  const sessions = new Map<string, Session>();
  const codes = new Map<string, { principal: Principal; expiresAtMs: number }>();

  const sweep = () => {
    const t = now();
    for (const [id, s] of sessions) if (s.expiresAtMs <= t) sessions.delete(id);
    for (const [c, v] of codes) if (v.expiresAtMs <= t) codes.delete(c);
  };

  return {
    checkToken(token) {
      if (typeof token !== 'string' || token.length === 0 || token.length > 512) return undefined;
      const d = digest(token);
      // Every token is compared, so the time taken does not say which one nearly matched.
      let found: Principal | undefined;
      for (const t of tokens) if (timingSafeEqual(d, t.digest)) found ??= t.principal;
      return found;
    },
    createSession(principal) {
      sweep();
      while (sessions.size >= MAX_SESSIONS) {
        const oldest = sessions.keys().next().value;
        if (oldest === undefined) break;
        sessions.delete(oldest);
      }
      const session: Session = {
        id: randomSecret(),
        principal,
        csrfToken: randomSecret(),
        expiresAtMs: now() + sessionTtlMs,
      };
      sessions.set(session.id, session);
      return session;
    },
    getSession(id) {
      const s = sessions.get(id);
      if (!s) return undefined;
      if (s.expiresAtMs <= now()) {
        sessions.delete(id);
        return undefined;
      }
      s.expiresAtMs = now() + sessionTtlMs;
      return s;
    },
    endSession(id) {
      sessions.delete(id);
    },
    createLoginCode(principal) {
      sweep();
      const code = randomSecret();
      codes.set(code, { principal, expiresAtMs: now() + loginCodeTtlMs });
      return code;
    },
    redeemLoginCode(code) {
      const entry = codes.get(code);
      if (!entry) return undefined;
      codes.delete(code);
      return entry.expiresAtMs > now() ? entry.principal : undefined;
    },
  };
}

/** Constant-time comparison of two short secrets (CSRF tokens). */
export function sameSecret(a: string | undefined, b: string): boolean {
  if (typeof a !== 'string') return false;
  return timingSafeEqual(digest(a), digest(b));
}

/** Reads one cookie from a Cookie header; undefined when absent or malformed. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      return /^[A-Za-z0-9_-]{1,128}$/.test(value) ? value : undefined;
    }
  }
  return undefined;
}

/** The Set-Cookie value of a session (no Secure: the console serves plain HTTP on loopback). */
export function sessionCookie(id: string, maxAgeS: number): string {
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}`;
}

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openCaptureStore, parseCaptureSpec, redactCaptureSpec } from '../../../src/capture/open-store.ts';
import { freeTcpPort } from '../../harness/ports.ts';

test('open-store - parses sqlite and postgres specs', () => {
  assert.deepEqual(parseCaptureSpec('sqlite:var/capture.db'), { kind: 'sqlite', path: 'var/capture.db' });
  assert.deepEqual(parseCaptureSpec('sqlite:/var/lib/switchyard/c.db'), {
    kind: 'sqlite',
    path: '/var/lib/switchyard/c.db',
  });
  assert.deepEqual(parseCaptureSpec('SQLite:c.db'), { kind: 'sqlite', path: 'c.db' });
  for (const spec of ['postgres://u:p@db.lan:5433/capture', 'postgresql://db/capture?sslmode=require']) {
    assert.deepEqual(parseCaptureSpec(spec), { kind: 'postgres', connectionString: spec });
  }
});

test('open-store - refuses other forms, naming the accepted ones', () => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['var/capture.db', /sqlite:PATH.*postgres:\/\//],
    ['mysql://u@h/db', /unknown scheme "mysql:".*sqlite:PATH/],
    ['sqlite:', /needs a file path/],
    ['sqlite://var/c.db', /not a URL/],
    ['postgres:capture', /expected postgres:\/\//],
    ['postgres:///capture', /needs a host/],
    ['postgres://db.lan', /needs a database name/],
    [' sqlite:c.db', /whitespace/],
  ];
  for (const [spec, why] of cases) {
    assert.throws(
      () => parseCaptureSpec(spec),
      (err: Error & { code?: string }) => err.code === 'SY_ERR_INVALID_ARGUMENT' && why.test(err.message),
      spec,
    );
  }
});

test('open-store - never shows a password', () => {
  assert.equal(redactCaptureSpec('postgres://cap:s3cr3t@db:5432/c'), 'postgres://cap:[redacted]@db:5432/c');
  assert.equal(redactCaptureSpec('postgres://cap@db/c'), 'postgres://cap@db/c');
  assert.equal(
    redactCaptureSpec('postgres://db/c?user=x&password=s3cr3t&a=1'),
    'postgres://db/c?user=x&password=[redacted]&a=1',
  );
  assert.throws(
    () => parseCaptureSpec('postgres://cap:s3cr3t@db.lan'),
    (err: Error & { details?: unknown }) =>
      !err.message.includes('s3cr3t') && !JSON.stringify(err.details).includes('s3cr3t'),
  );
});

test('open-store - an unreachable PostgreSQL is a retryable error without the password', async () => {
  const port = await freeTcpPort(); // nothing listens there
  await assert.rejects(
    openCaptureStore(`postgres://cap:s3cr3t@127.0.0.1:${port}/capture`),
    (err: Error & { code?: string; retryable?: boolean }) => {
      assert.equal(err.code, 'SY_ERR_CAPTURE_STORE_UNAVAILABLE');
      assert.equal(err.retryable, true);
      assert.ok(!err.message.includes('s3cr3t'), err.message);
      assert.match(err.message, /cap:\[redacted\]@127\.0\.0\.1/);
      return true;
    },
  );
});

test('open-store - sqlite: opens, a read-only handle reads and refuses writes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-capture-open-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await assert.rejects(openCaptureStore(`sqlite:${join(dir, 'missing.db')}`, { readOnly: true }));
  const spec = `sqlite:${join(dir, 'sub', 'c.db')}`;
  const store = await openCaptureStore(spec);
  assert.equal(store.kind, 'sqlite');
  await store.recordEvent({ tsUs: 5, kind: 'node.state', subject: 'as1', detail: {} });
  const reader = await openCaptureStore(spec, { readOnly: true });
  assert.equal((await reader.eventsBetween(0, 10)).length, 1);
  await assert.rejects(reader.recordEvent({ tsUs: 6, kind: 'x', subject: 'y', detail: {} }), {
    code: 'SY_ERR_INVALID_ARGUMENT',
  });
  await assert.rejects(reader.insertBatch([]), { code: 'SY_ERR_INVALID_ARGUMENT' });
  await assert.rejects(reader.applyRetention({}, 0), { code: 'SY_ERR_INVALID_ARGUMENT' });
  await reader.close();
  await store.close();
  await assert.rejects(store.stats(), { code: 'SY_ERR_CLOSED' });
});

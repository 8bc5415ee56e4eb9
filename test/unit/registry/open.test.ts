import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createSilentLogger } from '../../../src/core/logger.ts';
import { openStore, parseStoreSpec } from '../../../src/registry/open.ts';

test('open - parses etcd specs into http endpoints', () => {
  assert.deepEqual(parseStoreSpec('etcd://127.0.0.1:2379'), {
    kind: 'etcd',
    endpoints: ['http://127.0.0.1:2379'],
  });
  assert.deepEqual(parseStoreSpec('etcd://10.0.0.1:12379,10.0.0.2:22379,etcd-3.lan'), {
    kind: 'etcd',
    endpoints: ['http://10.0.0.1:12379', 'http://10.0.0.2:22379', 'http://etcd-3.lan:2379'],
  });
  assert.deepEqual(parseStoreSpec('etcd://[::1]:2379'), { kind: 'etcd', endpoints: ['http://[::1]:2379'] });
  assert.deepEqual(parseStoreSpec('ETCD://h:1'), { kind: 'etcd', endpoints: ['http://h:1'] });
});

test('open - parses embedded specs and bare paths', () => {
  assert.deepEqual(parseStoreSpec('embedded:var/registry.db'), { kind: 'embedded', path: 'var/registry.db' });
  assert.deepEqual(parseStoreSpec('embedded:/var/lib/switchyard/r.db'), {
    kind: 'embedded',
    path: '/var/lib/switchyard/r.db',
  });
  assert.deepEqual(parseStoreSpec('var/registry.db'), { kind: 'embedded', path: 'var/registry.db' });
  assert.deepEqual(parseStoreSpec('./odd:name.db'), { kind: 'embedded', path: './odd:name.db' });
});

test('open - refuses bad specs with a reason', () => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['   ', /empty/],
    [' etcd://h:1', /whitespace/],
    ['etcd://user:secret@10.0.0.1:2379', /credentials/],
    ['etcd://', /at least one/],
    ['etcd:10.0.0.1:2379', /expected etcd:\/\//],
    ['etcd://10.0.0.1:2379/path', /only host:port/],
    ['etcd://10.0.0.1:2379?x=1', /only host:port/],
    ['etcd://10.0.0.1:0', /out of range/],
    ['etcd://10.0.0.1:65536', /out of range/],
    ['etcd://10.0.0.1:2379,', /is not host:port/],
    ['etcd://a b:1', /is not host:port/],
    ['etcd://h:1,h:1', /twice/],
    ['etcds://10.0.0.1:2379', /TLS/],
    ['https://10.0.0.1:2379', /TLS/],
    ['consul://x', /unknown scheme/],
    ['embedded:', /needs a file path/],
    ['embedded:a\nb', /control characters/],
  ];
  for (const [spec, why] of cases) {
    assert.throws(
      () => parseStoreSpec(spec),
      (err: Error & { code?: string }) => err.code === 'SY_ERR_INVALID_ARGUMENT' && why.test(err.message),
      spec,
    );
  }
  // The password does not end up in the message (nor in the details that get logged).
  assert.throws(
    () => parseStoreSpec('etcd://u:hunter2@h:1,h2:2'),
    (err: Error & { details?: unknown }) =>
      !err.message.includes('hunter2') && !JSON.stringify(err.details).includes('hunter2'),
  );
});

test('open - openStore opens the backend the spec names', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-open-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const logger = createSilentLogger();
  const embedded = await openStore(`embedded:${join(dir, 'sub', 'r.db')}`, { logger });
  t.after(() => embedded.close());
  assert.equal(embedded.kind, 'embedded');
  await embedded.put('/k', 'v');
  assert.equal((await embedded.get('/k'))?.value, 'v');
  // etcd is not contacted at open: a dead endpoint only fails the calls, and retryably.
  const etcd = await openStore('etcd://127.0.0.1:1', { logger, callTimeoutMs: 200 });
  t.after(() => etcd.close());
  assert.equal(etcd.kind, 'etcd');
  await assert.rejects(etcd.get('/k'), (err: Error & { code?: string; retryable?: boolean }) => {
    return (
      (err.code === 'SY_ERR_REGISTRY_UNAVAILABLE' || err.code === 'SY_ERR_REGISTRY_TIMEOUT') &&
      err.retryable === true
    );
  });
  await assert.rejects(openStore('nope://x', { logger }), { code: 'SY_ERR_INVALID_ARGUMENT' });
});

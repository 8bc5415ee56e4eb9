import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createSilentLogger } from '../../../src/core/logger.ts';
import { createEmbeddedStore, type EmbeddedStoreOptions } from '../../../src/registry/embedded-store.ts';
import { KeyKind, keyFor } from '../../../src/registry/keys.ts';
import { createRegistry } from '../../../src/registry/registry.ts';
import type { KvEvent, KvStore } from '../../../src/registry/store.ts';

const logger = createSilentLogger();
const STORE_MODULE = fileURLToPath(new URL('../../../src/registry/embedded-store.ts', import.meta.url));
const LOGGER_MODULE = fileURLToPath(new URL('../../../src/core/logger.ts', import.meta.url));

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-emb-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function open(t: TestContext, opts: Partial<EmbeddedStoreOptions> & { path: string }) {
  const store = await createEmbeddedStore({ logger, ...opts });
  t.after(() => store.close());
  return store;
}

async function waitFor<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 3000,
) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function watchInto(t: TestContext, store: KvStore, prefix: string, from: number) {
  const seen = { events: [] as KvEvent[], compacted: [] as number[], connection: [] as boolean[] };
  const p = store.watch(prefix, from, {
    onEvents: (evs) => seen.events.push(...evs),
    onCompacted: (r) => seen.compacted.push(r),
    onConnection: (c) => seen.connection.push(c),
  });
  t.after(async () => (await p).close());
  return { seen, ready: p };
}

test('embedded store - creates the parent directory and starts at revision 1 like etcd', async (t) => {
  const dir = tempDir(t);
  const store = await open(t, { path: join(dir, 'a', 'b', 'registry.db') });
  assert.equal((await store.list('/')).revision, 1);
  assert.equal(await store.put('/k', 'v'), 2);
  assert.ok(existsSync(join(dir, 'a', 'b', 'registry.db')));
});

test('embedded store - history is trimmed to historyLimit; older watches get onCompacted', async (t) => {
  const store = await open(t, { path: join(tempDir(t), 'r.db'), historyLimit: 5 });
  for (let i = 0; i < 10; i++) await store.put('/a/k', String(i)); // revisions 2..11
  const old = watchInto(t, store, '/a/', 1);
  await old.ready;
  await waitFor('compacted', () => old.seen.compacted[0]);
  assert.deepEqual(old.seen.compacted, [7]);
  const recent = watchInto(t, store, '/a/', 7);
  await recent.ready;
  await waitFor('5 events', () => recent.seen.events.length === 5);
  assert.deepEqual(
    recent.seen.events.map((e) => e.revision),
    [7, 8, 9, 10, 11],
  );
});

test('embedded store - trimming other prefixes does not compact a watch that kept up', async (t) => {
  const store = await open(t, { path: join(tempDir(t), 'r.db'), historyLimit: 5, pollIntervalMs: 5 });
  const w = watchInto(t, store, '/a/', (await store.list('/')).revision + 1);
  await w.ready;
  for (let round = 0; round < 6; round++) {
    for (let i = 0; i < 3; i++) await store.put(`/b/k${i}`, String(round));
    await new Promise((r) => setTimeout(r, 40));
  }
  const rev = await store.put('/a/x', 'mine');
  await waitFor('event on /a/', () => w.seen.events.find((e) => e.revision === rev));
  assert.deepEqual(w.seen.compacted, []);
});

test('embedded store - two processes writing one file get unique, ordered revisions', async (t) => {
  const path = join(tempDir(t), 'shared.db');
  const store = await open(t, { path });
  const from = (await store.list('/')).revision + 1;
  const w = watchInto(t, store, '/mp/', from);
  await w.ready;
  const WINDOW_MS = 150;
  const script = `
    const { createEmbeddedStore } = await import(${JSON.stringify(STORE_MODULE)});
    const { createSilentLogger } = await import(${JSON.stringify(LOGGER_MODULE)});
    const store = await createEmbeddedStore({ path: ${JSON.stringify(path)}, logger: createSilentLogger() });
    const revs = [];
    await store.ping();
    process.stdout.write('ready\\n');
    // The parent answers with a start time: both write during the same wall-clock window.
    const startAt = Number(await new Promise((resolve) => process.stdin.once('data', resolve)));
    while (Date.now() < startAt) await new Promise((resolve) => setImmediate(resolve));
    for (let i = 0; Date.now() < startAt + ${WINDOW_MS}; i++) {
      revs.push(await store.put('/mp/child/' + i, 'c' + i));
      await new Promise((resolve) => setImmediate(resolve));
    }
    // A holder that dies without revoking: its key must be swept by the other process.
    const lease = await store.grantLease(300);
    await store.put('/mp/crashed', 'x', { lease });
    process.stdout.write(JSON.stringify(revs) + '\\n');
    process.exit(0);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined)
      process.kill(child.pid, 'SIGKILL');
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitFor(
    'child ready',
    () => out.startsWith('ready\n') || (child.exitCode !== null && assert.fail(err)),
    10_000,
  );
  const startAt = Date.now() + 30;
  child.stdin.end(String(startAt));
  while (Date.now() < startAt) await new Promise((resolve) => setImmediate(resolve));
  const mine: number[] = [];
  for (let i = 0; Date.now() < startAt + WINDOW_MS; i++) {
    mine.push(await store.put(`/mp/parent/${i}`, `p${i}`));
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.equal(await exited, 0, err);
  const theirs = JSON.parse(out.slice('ready\n'.length)) as number[];
  const all = [...mine, ...theirs];
  assert.equal(new Set(all).size, all.length, 'no revision used twice');
  t.diagnostic(`${mine.length} puts here and ${theirs.length} in the other process, interleaved`);
  // The writers really ran at the same time (otherwise this proves little).
  assert.ok(
    Math.min(...theirs) < Math.max(...mine) && Math.min(...mine) < Math.max(...theirs),
    'interleaved',
  );
  await waitFor('all events', () => w.seen.events.length >= all.length + 1);
  const revs = w.seen.events.map((e) => e.revision);
  assert.deepEqual(
    revs,
    [...revs].sort((a, b) => a - b),
  );
  assert.equal((await store.list('/mp/')).entries.length, all.length + 1);
  // The dead holder's lease expires and this process's sweeper deletes its key, with an event.
  await waitFor('crashed key swept', async () => (await store.get('/mp/crashed')) === undefined, 3000);
  await waitFor('delete event', () =>
    w.seen.events.find((e) => e.type === 'delete' && e.key === '/mp/crashed'),
  );
});

test('embedded store - a lease expired by another process clock is reported lost; announce comes back', async (t) => {
  const path = join(tempDir(t), 'r.db');
  const store = await open(t, { path });
  const reg = createRegistry(store, { logger });
  t.after(() => reg.close());
  let lost = 0;
  const a = await reg.announce(
    { id: 'as1', uri: 'sip:127.0.0.1:5060', state: 'ready', startedAt: new Date().toISOString() },
    { ttlMs: 600, onLost: () => lost++ },
  );
  t.after(() => a.withdraw().catch(() => undefined));
  const key = keyFor(reg.prefix, KeyKind.node, 'as1');
  const firstLease = (await store.get(key))?.leaseId;
  // Another process whose clock is an hour ahead sweeps every lease as expired.
  const future = await createEmbeddedStore({ path, logger, now: () => Date.now() + 3_600_000 });
  try {
    await waitFor('swept', async () => (await store.get(key)) === undefined, 2000);
  } finally {
    await future.close();
  }
  const back = await waitFor('re-announced', async () => store.get(key), 3000);
  assert.notEqual(back.leaseId, firstLease);
  assert.equal(lost, 1);
});

test('embedded store - an unreachable file: retryable errors, watch disconnects, then recovers', async (t) => {
  const base = tempDir(t);
  const real = join(base, 'real');
  mkdirSync(real);
  const link = join(base, 'reg');
  symlinkSync(real, link);
  const point = (target: string) => {
    symlinkSync(target, `${link}.tmp`);
    renameSync(`${link}.tmp`, link);
  };
  const store = await open(t, { path: join(link, 'r.db') });
  const rev = await store.put('/k', '1');
  const w = watchInto(t, store, '/', rev + 1);
  await w.ready;
  point(join(base, 'nowhere'));
  await waitFor('disconnected', () => w.seen.connection.includes(false));
  await assert.rejects(store.put('/k', '2'), { code: 'SY_ERR_REGISTRY_UNAVAILABLE', retryable: true });
  await assert.rejects(store.list('/'), { code: 'SY_ERR_REGISTRY_UNAVAILABLE', retryable: true });
  await assert.rejects(store.ping(), { code: 'SY_ERR_REGISTRY_UNAVAILABLE' });
  point(real);
  const rev3 = await store.put('/k', '3');
  await waitFor('event after recovery', () => w.seen.events.find((e) => e.revision === rev3));
  assert.deepEqual(w.seen.connection, [false, true]);
  assert.deepEqual(w.seen.compacted, []);
});

test('embedded store - a file deleted under the store is recreated and watches must re-list', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'r.db');
  const store = await open(t, { path });
  await store.put('/k', '1');
  await store.put('/k', '2');
  const w = watchInto(t, store, '/', 4);
  await w.ready;
  for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
  await waitFor('watch told to re-list', () => w.seen.compacted.length > 0);
  assert.equal(await store.get('/k'), undefined);
  assert.equal(await store.put('/k', 'fresh'), 2);
});

test('embedded store - refuses leases it did not grant, and released ones', async (t) => {
  const dir = tempDir(t);
  const a = await open(t, { path: join(dir, 'a.db') });
  const b = await open(t, { path: join(dir, 'b.db') });
  const lease = await a.grantLease(1000);
  await assert.rejects(b.put('/k', 'v', { lease }), { code: 'SY_ERR_INVALID_ARGUMENT' });
  lease.release();
  await assert.rejects(a.put('/k', 'v', { lease }), { code: 'SY_ERR_LEASE_LOST' });
  await assert.rejects(a.grantLease(0), { code: 'SY_ERR_INVALID_ARGUMENT' });
  await assert.rejects(a.watch('/', 0, { onEvents: () => undefined }), { code: 'SY_ERR_INVALID_ARGUMENT' });
});

test('embedded store - compare-and-put detects concurrent changes', async (t) => {
  const store = await open(t, { path: join(tempDir(t), 'r.db') });
  const put = store.putIfModRevision?.bind(store);
  assert.ok(put);
  const r1 = await put('/k', 'a', 0);
  assert.ok(r1);
  assert.equal(await put('/k', 'b', 0), undefined, 'exists already');
  const r2 = await put('/k', 'b', r1);
  assert.ok(r2 && r2 > r1);
  assert.equal(await put('/k', 'c', r1), undefined, 'stale revision');
  assert.equal((await store.get('/k'))?.value, 'b');
});

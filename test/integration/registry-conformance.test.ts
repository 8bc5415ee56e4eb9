import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it, type TestContext } from 'node:test';
import { createLogger, createSilentLogger, type Logger } from '../../src/core/logger.ts';
import { createMetricsRegistry } from '../../src/core/metrics.ts';
import {
  createEmbeddedStore,
  createEtcdStore,
  createRegistry,
  KeyKind,
  type KvEvent,
  type KvStore,
  keyFor,
  type RegistryView,
  type Watch,
} from '../../src/registry/index.ts';
import { type EtcdCluster, startEtcd } from '../harness/etcd.ts';
import { type FaultProxy, startFaultProxy } from '../harness/fault-proxy.ts';

/**
 * One suite, run against both backends: the embedded store must behave like etcd in everything
 * the registry relies on (store.ts). Backend differences are confined to `Backend`.
 */

type CompactableStore = KvStore & { compact(revision: number): Promise<void> };

interface Backend {
  readonly name: string;
  /** The store under test. */
  readonly store: CompactableStore;
  /** An independent second client on the same data (for the embedded store: another handle). */
  readonly second: CompactableStore;
  /** TTL for lease tests: etcd leases are whole seconds, at least 2 s with our timing flags. */
  readonly ttlMs: number;
  /** Cuts `store` off the registry; returns a store that still reaches the data. */
  partition(): Promise<CompactableStore>;
  heal(): Promise<void>;
  close(): Promise<void>;
}

const silent = createSilentLogger();
let prefixCounter = 0;
const uniquePrefix = (what: string) => `/conf-${process.pid}-${++prefixCounter}-${what}`;

async function waitFor<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A watch that records everything it is told. */
interface Recorder {
  events: KvEvent[];
  batches: number;
  connection: boolean[];
  compacted: number[];
  watch: Watch;
}

async function record(t: TestContext, store: KvStore, prefix: string, from: number): Promise<Recorder> {
  const r: Omit<Recorder, 'watch'> = { events: [], batches: 0, connection: [], compacted: [] };
  const watch = await store.watch(prefix, from, {
    onEvents: (evs) => {
      r.batches++;
      r.events.push(...evs);
    },
    onConnection: (c) => r.connection.push(c),
    onCompacted: (rev) => r.compacted.push(rev),
  });
  t.after(() => watch.close());
  return Object.assign(r, { watch });
}

/** Log lines captured from a real pino logger, to check what is logged and how often. */
function captureLogger(): { logger: Logger; lines: () => { msg: string; key?: string; level: number }[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  const logger = createLogger({ level: 'info', destination });
  const lines = () =>
    chunks
      .join('')
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as { msg: string; key?: string; level: number });
  return { logger, lines };
}

function nodeInput(id: string, port: number) {
  return {
    id,
    uri: `sip:127.0.0.1:${port}`,
    state: 'ready' as const,
    startedAt: new Date().toISOString(),
  };
}

// ---- backends ---------------------------------------------------------------------------------

async function embeddedBackend(): Promise<Backend> {
  const base = mkdtempSync(join(tmpdir(), 'switchyard-reg-'));
  // The store reaches its file through a symlink that the test can swap atomically: pointing it
  // nowhere makes the file unreachable (root ignores permissions, so chmod cannot do this).
  const real = join(base, 'real');
  mkdirSync(real);
  const link = join(base, 'reg');
  symlinkSync(real, link);
  const pointLink = (target: string) => {
    symlinkSync(target, `${link}.tmp`);
    renameSync(`${link}.tmp`, link);
  };
  const path = join(link, 'registry.db');
  const store = await createEmbeddedStore({ path, logger: silent });
  const second = await createEmbeddedStore({ path, logger: silent });
  let outside: CompactableStore | undefined;
  return {
    name: 'embedded',
    store,
    second,
    ttlMs: 1000,
    async partition() {
      pointLink(join(base, 'nowhere'));
      outside = await createEmbeddedStore({ path: join(real, 'registry.db'), logger: silent });
      return outside;
    },
    async heal() {
      await outside?.close();
      outside = undefined;
      pointLink(real);
    },
    async close() {
      await outside?.close();
      await store.close();
      await second.close();
      rmSync(base, { recursive: true, force: true });
    },
  };
}

async function etcdBackend(): Promise<Backend> {
  const cluster: EtcdCluster = await startEtcd();
  let proxy: FaultProxy | undefined;
  let store: CompactableStore | undefined;
  let second: CompactableStore | undefined;
  try {
    const url = new URL(cluster.endpoints[0] ?? '');
    proxy = await startFaultProxy({ host: url.hostname, port: Number(url.port) });
    store = await createEtcdStore({ endpoints: [proxy.url], logger: silent });
    second = await createEtcdStore({ endpoints: cluster.endpoints, logger: silent });
  } catch (err) {
    await store?.close();
    await proxy?.close();
    await cluster.stop();
    throw err;
  }
  const p = proxy;
  const s2 = second;
  return {
    name: 'etcd',
    store,
    second,
    ttlMs: 2000,
    async partition() {
      p.block();
      return s2;
    },
    async heal() {
      p.unblock();
    },
    async close() {
      await store.close();
      await s2.close();
      await p.close();
      await cluster.stop();
    },
  };
}

// ---- the suite --------------------------------------------------------------------------------

function conformance(name: string, make: () => Promise<Backend>): void {
  describe(`registry conformance (${name})`, () => {
    let b: Backend;
    before(async () => {
      b = await make();
    });
    after(async () => {
      await b?.close();
    });

    it('store - put, get, list and delete carry increasing revisions', async () => {
      const p = `${uniquePrefix('kv')}/`;
      const r1 = await b.store.put(`${p}a`, 'one');
      const r2 = await b.store.put(`${p}b`, 'two');
      assert.ok(r2 > r1, `${r2} > ${r1}`);
      const a = await b.store.get(`${p}a`);
      assert.deepEqual(a, { key: `${p}a`, value: 'one', modRevision: r1 });
      const r3 = await b.store.put(`${p}a`, 'uno ünïcode');
      assert.equal((await b.second.get(`${p}a`))?.value, 'uno ünïcode');
      const listing = await b.store.list(p);
      assert.deepEqual(
        listing.entries.map((e) => [e.key, e.value, e.modRevision]),
        [
          [`${p}a`, 'uno ünïcode', r3],
          [`${p}b`, 'two', r2],
        ],
      );
      assert.ok(listing.revision >= r3);
      assert.equal(await b.store.delete(`${p}a`), true);
      assert.equal(await b.store.delete(`${p}a`), false);
      assert.equal(await b.store.get(`${p}a`), undefined);
      assert.deepEqual(
        (await b.store.list(p)).entries.map((e) => e.key),
        [`${p}b`],
      );
      // A prefix is a prefix: 'p/b' does not list 'p/bb...' siblings of another prefix.
      await b.store.put(`${p}bb/x`, 'deep');
      assert.equal((await b.store.list(`${p}b/`)).entries.length, 0);
    });

    it('store - a kept-alive lease keeps its key past the TTL', async (t) => {
      const key = `${uniquePrefix('lease')}/k`;
      const lease = await b.store.grantLease(b.ttlMs);
      t.after(() => lease.revoke().catch(() => undefined));
      let lost = false;
      lease.onLost(() => {
        lost = true;
      });
      await b.store.put(key, 'alive', { lease });
      assert.equal((await b.store.get(key))?.leaseId, lease.id);
      await sleep(b.ttlMs * 2);
      assert.equal((await b.second.get(key))?.value, 'alive');
      assert.equal(lost, false);
    });

    it('store - after release the key vanishes within TTL + 1 s and a watch sees the delete', async (t) => {
      const p = `${uniquePrefix('release')}/`;
      const lease = await b.store.grantLease(b.ttlMs);
      const rev = await b.store.put(`${p}k`, 'v', { lease });
      const rec = await record(t, b.second, p, rev + 1);
      const released = Date.now();
      lease.release();
      const ev = await waitFor(
        'delete event',
        () => rec.events.find((e) => e.type === 'delete'),
        b.ttlMs + 2500,
      );
      const elapsed = Date.now() - released;
      assert.equal(ev.key, `${p}k`);
      assert.ok(elapsed <= b.ttlMs + 1200, `deleted ${elapsed} ms after release (ttl ${b.ttlMs})`);
      assert.equal(await b.store.get(`${p}k`), undefined);
    });

    it('store - revoke deletes the lease keys at once', async () => {
      const p = `${uniquePrefix('revoke')}/`;
      const lease = await b.store.grantLease(b.ttlMs);
      await b.store.put(`${p}a`, '1', { lease });
      await b.store.put(`${p}b`, '2', { lease });
      await lease.revoke();
      assert.deepEqual((await b.second.list(p)).entries, []);
      await assert.rejects(b.store.put(`${p}c`, '3', { lease }), { code: 'SY_ERR_LEASE_LOST' });
    });

    it('store - a watch from a past revision replays history in order', async (t) => {
      const p = `${uniquePrefix('replay')}/`;
      const r1 = await b.store.put(`${p}x`, '1');
      const r2 = await b.store.put(`${p}y`, '2');
      await b.store.put(`${uniquePrefix('other')}/z`, 'not ours');
      const r3 = await b.store.put(`${p}x`, '3');
      await b.store.delete(`${p}y`);
      const rec = await record(t, b.store, p, r1);
      await waitFor('4 events', () => rec.events.length >= 4);
      await sleep(100);
      assert.deepEqual(
        rec.events.map((e) => [e.type, e.key, e.type === 'put' ? e.value : null]),
        [
          ['put', `${p}x`, '1'],
          ['put', `${p}y`, '2'],
          ['put', `${p}x`, '3'],
          ['delete', `${p}y`, null],
        ],
      );
      assert.deepEqual(
        rec.events.slice(0, 3).map((e) => e.revision),
        [r1, r2, r3],
      );
      assert.ok((rec.events[3]?.revision ?? 0) > r3);
      // Later events arrive too, still in order.
      const r5 = await b.store.put(`${p}w`, '5');
      await waitFor('live event', () => rec.events.find((e) => e.revision === r5));
      assert.equal(rec.connection.length, 0);
    });

    it('store - a watch resumes after a disconnect and misses nothing', async (t) => {
      const p = `${uniquePrefix('resume')}/`;
      const r0 = await b.store.put(`${p}start`, '0');
      const rec = await record(t, b.store, p, r0);
      await waitFor('first event', () => rec.events.length === 1);
      const outside = await b.partition();
      let healed = false;
      t.after(async () => {
        if (!healed) await b.heal();
      });
      await waitFor('disconnected', () => rec.connection.includes(false), 5000);
      const written: number[] = [];
      for (let i = 1; i <= 5; i++) written.push(await outside.put(`${p}k${i}`, `v${i}`));
      await outside.delete(`${p}k2`);
      await b.heal();
      healed = true;
      await waitFor('reconnected', () => rec.connection.at(-1) === true, 10_000);
      await waitFor('all events', () => rec.events.length >= 7, 5000);
      await sleep(200);
      assert.deepEqual(
        rec.events.map((e) => `${e.type} ${e.key.slice(p.length)}`),
        ['put start', 'put k1', 'put k2', 'put k3', 'put k4', 'put k5', 'delete k2'],
      );
      const revisions = rec.events.map((e) => e.revision);
      assert.deepEqual(
        [...revisions].sort((x, y) => x - y),
        revisions,
        'in revision order',
      );
      assert.deepEqual(revisions.slice(1, 6), written);
      assert.deepEqual(rec.connection, [false, true]);
    });

    it('store - a watch from a compacted revision reports onCompacted and stops', async (t) => {
      const p = `${uniquePrefix('compact')}/`;
      const r1 = await b.store.put(`${p}a`, '1');
      await b.store.put(`${p}a`, '2');
      const r3 = await b.store.put(`${p}a`, '3');
      await b.store.compact(r3);
      const rec = await record(t, b.store, p, r1);
      const compactRevision = await waitFor('onCompacted', () => rec.compacted[0], 5000);
      assert.equal(compactRevision, r3);
      await b.store.put(`${p}a`, '4');
      await sleep(200);
      assert.deepEqual(rec.events, [], 'a compacted watch delivers nothing');
      assert.equal(rec.compacted.length, 1);
      // From the compaction revision on, watching works.
      const rec2 = await record(t, b.store, p, r3);
      await waitFor('events after compaction point', () => rec2.events.length >= 2);
    });

    it('registry - watchView sees join, update and leave; rejected records stay out of nodes', async (t) => {
      const prefix = uniquePrefix('view');
      const metrics = createMetricsRegistry();
      const { logger, lines } = captureLogger();
      const reg = createRegistry(b.store, { prefix, logger, metrics });
      t.after(() => reg.close());
      const views: RegistryView[] = [];
      const w = await reg.watchView((v) => views.push(v));
      assert.equal(w.current().nodes.size, 0);

      const a = await reg.announce(nodeInput('n1', 5071), { ttlMs: b.ttlMs });
      const joined = await waitFor('join', () => w.current().nodes.get('n1'));
      assert.equal(joined.uri, 'sip:127.0.0.1:5071');
      assert.equal(joined.setId, 1);
      await a.update({ state: 'draining', calls: 3 });
      await waitFor('update', () => w.current().nodes.get('n1')?.state === 'draining');
      assert.equal(w.current().nodes.get('n1')?.calls, 3);

      // Attribute injection through the URI, and a record under another node's key.
      const badKey = keyFor(prefix, KeyKind.node, 'bad');
      const bad = { ...nodeInput('bad', 5072), uri: 'sip:127.0.0.1:5072;weight=100', updatedAt: 'x' };
      await b.second.put(badKey, JSON.stringify(bad));
      const thiefKey = keyFor(prefix, KeyKind.node, 'thief');
      await b.second.put(thiefKey, JSON.stringify({ ...nodeInput('n1', 5099), updatedAt: 'x' }));
      await waitFor(
        'rejections',
        () => w.current().rejected.has(badKey) && w.current().rejected.has(thiefKey),
      );
      assert.equal(w.current().nodes.has('bad'), false);
      assert.equal(w.current().nodes.get('n1')?.uri, 'sip:127.0.0.1:5071', 'the thief did not replace n1');

      // A static node with an agent's id: the agent record wins, the static one is reported.
      await reg.putStatic({ id: 'n1', uri: 'sip:127.0.0.9:5060' });
      const staticKey = keyFor(prefix, KeyKind.static, 'n1');
      await waitFor('shadowed static', () => w.current().rejected.get(staticKey));
      assert.equal(w.current().statics.has('n1'), false);
      assert.equal(w.current().nodes.get('n1')?.uri, 'sip:127.0.0.1:5071');

      // More events must not log the same rejection again.
      await a.update({ calls: 4 });
      await waitFor('calls 4', () => w.current().nodes.get('n1')?.calls === 4);
      const snapshot = await reg.snapshot();
      assert.equal(snapshot.rejected.size, 3);

      await a.withdraw();
      await waitFor('leave', () => !w.current().nodes.has('n1'));
      // The agent is gone: the static node with that id is in the view again.
      assert.equal(w.current().statics.get('n1')?.uri, 'sip:127.0.0.9:5060');
      assert.equal(w.current().rejected.has(staticKey), false);

      const rejectLogs = lines().filter((l) => l.msg === 'registry record rejected');
      assert.deepEqual(rejectLogs.map((l) => l.key).sort(), [badKey, staticKey, thiefKey].sort());
      const counted = (await metrics.getSingleMetric('switchyard_registry_rejected_records_total')?.get())
        ?.values;
      assert.deepEqual(counted?.map((v) => [v.labels['kind'], v.value]).sort(), [
        ['nodes', 2],
        ['static', 1],
      ]);
      // Views are immutable snapshots: an early view does not change afterwards.
      assert.ok(views.length >= 4);
      assert.equal(views[0]?.nodes.get('n1')?.state, 'ready');
      assert.ok(views.every((v, i) => i === 0 || v !== views[i - 1]));
      assert.ok(Object.isFrozen(views[0]));
    });

    it('registry - intents survive node changes and are kept apart from node records', async (t) => {
      const prefix = uniquePrefix('intent');
      const reg = createRegistry(b.store, { prefix, logger: silent });
      t.after(() => reg.close());
      const w = await reg.watchView(() => undefined);

      const set = await reg.setIntent('n2', { drain: true, by: 'alice', reason: 'maintenance' });
      assert.equal(set.drain, true);
      const a = await reg.announce({ ...nodeInput('n2', 5073), weight: 10 }, { ttlMs: b.ttlMs });
      await waitFor('node and intent', () => w.current().nodes.has('n2') && w.current().intents.has('n2'));
      await a.update({ state: 'ready', calls: 9 });
      await waitFor('calls 9', () => w.current().nodes.get('n2')?.calls === 9);
      assert.equal(w.current().intents.get('n2')?.drain, true, 'a re-announce does not undo a drain');
      await a.withdraw();
      await waitFor('node gone', () => !w.current().nodes.has('n2'));
      assert.equal((await reg.getIntent('n2'))?.drain, true, 'intent outlives the node');

      const weighted = await reg.setIntent('n2', { weight: 50 });
      assert.deepEqual(
        [weighted.drain, weighted.weight, weighted.by, weighted.reason],
        [true, 50, 'alice', 'maintenance'],
      );
      const cleared = await reg.setIntent('n2', { weight: null, drain: false, by: 'bob' });
      assert.deepEqual([cleared.drain, cleared.weight, cleared.by], [false, undefined, 'bob']);
      await assert.rejects(reg.setIntent('n2', { weight: 0 }), { code: 'SY_ERR_INVALID_ARGUMENT' });
      await assert.rejects(reg.setIntent('n 2', { drain: true }), { code: 'SY_ERR_INVALID_ARGUMENT' });
      // Concurrent read-modify-writes do not lose each other's fields.
      await Promise.all([reg.setIntent('n3', { drain: true }), reg.setIntent('n3', { weight: 7 })]);
      const both = await reg.getIntent('n3');
      assert.deepEqual([both?.drain, both?.weight], [true, 7]);

      assert.equal(await reg.clearIntent('n2'), true);
      assert.equal(await reg.getIntent('n2'), undefined);
      assert.equal(await reg.clearIntent('n2'), false);
    });

    it('registry - an announcement comes back by itself after its lease is lost', async (t) => {
      const prefix = uniquePrefix('reannounce');
      const reg = createRegistry(b.store, { prefix, logger: silent });
      t.after(() => reg.close());
      const key = keyFor(prefix, KeyKind.node, 'n4');
      let lost = 0;
      let recovered = 0;
      const a = await reg.announce(nodeInput('n4', 5074), {
        ttlMs: b.ttlMs,
        onLost: () => lost++,
        onRecovered: () => recovered++,
      });
      t.after(() => a.withdraw().catch(() => undefined));
      // A registry outage longer than the TTL: the lease expires on the registry side.
      const outside = await b.partition();
      let healed = false;
      t.after(async () => {
        if (!healed) await b.heal();
      });
      await waitFor('record expired', async () => (await outside.get(key)) === undefined, b.ttlMs * 2 + 3000);
      await b.heal();
      healed = true;
      const healedAt = Date.now();
      const back = await waitFor('record back', async () => b.second.get(key), 10_000);
      t.diagnostic(`${b.name}: record back ${Date.now() - healedAt} ms after the outage ended`);
      assert.ok(Date.now() - healedAt < 8000);
      assert.equal(JSON.parse(back.value).id, 'n4');
      // Other clients can see the new record a moment before the writer has the put's reply.
      await waitFor('onRecovered', () => recovered === 1, 2000);
      assert.equal(lost, 1);
      // And it is kept alive again under the new lease.
      await sleep(b.ttlMs * 1.5);
      assert.ok(await b.second.get(key));
    });

    it('registry - a view resuming into compacted history is re-read whole', async (t) => {
      const prefix = uniquePrefix('resnap');
      const { logger, lines } = captureLogger();
      const reg = createRegistry(b.store, { prefix, logger });
      t.after(() => reg.close());
      await reg.putStatic({ id: 's1', uri: 'sip:10.0.0.1' });
      const connection: boolean[] = [];
      const views: RegistryView[] = [];
      const w = await reg.watchView((v) => views.push(v), { onConnection: (c) => connection.push(c) });
      assert.ok(w.current().statics.has('s1'));
      const outside = await b.partition();
      let healed = false;
      t.after(async () => {
        if (!healed) await b.heal();
      });
      await waitFor('disconnected', () => connection.includes(false), 5000);
      const staticJson = (id: string) =>
        JSON.stringify({ id, uri: 'sip:10.0.0.2', addedAt: new Date().toISOString() });
      await outside.put(keyFor(prefix, KeyKind.static, 's2'), staticJson('s2'));
      await outside.delete(keyFor(prefix, KeyKind.static, 's1'));
      const last = await outside.put(keyFor(prefix, KeyKind.static, 's3'), staticJson('s3'));
      await outside.compact(last);
      await b.heal();
      healed = true;
      await waitFor('re-read view', () => w.current().statics.has('s3'), 10_000);
      assert.deepEqual([...w.current().statics.keys()].sort(), ['s2', 's3']);
      assert.ok(
        lines().some((l) => l.msg === 'registry watch compacted; re-reading'),
        'the view was re-read, not replayed',
      );
      assert.equal(connection.at(-1), true);
      for (const v of views)
        assert.ok(!(v.statics.has('s1') && v.statics.has('s3')), 'never a mix of old and new');
      // And it follows changes again.
      await reg.removeStatic('s2');
      await waitFor('s2 removed', () => !w.current().statics.has('s2'));
    });

    it('registry - dispatcher status is published under a lease and revoked on close', async (t) => {
      const prefix = uniquePrefix('status');
      const reg = createRegistry(b.store, { prefix, logger: silent });
      t.after(() => reg.close());
      const w = await reg.watchView(() => undefined);
      const pub = reg.publishDispatcherStatus({ ttlMs: b.ttlMs });
      const status = {
        name: 'lb1',
        kamailioRpc: 'http://127.0.0.1:5071/RPC',
        listFile: '/tmp/dispatcher.list',
        generation: 1,
        appliedHash: 'abc',
        inSync: true,
        registryConnected: true,
        kamailioReachable: true,
        driftRepairs: 0,
        nodes: 2,
        updatedAt: new Date().toISOString(),
      };
      pub.update(status);
      pub.update({ ...status, generation: 2 });
      pub.update({ ...status, generation: 3 });
      await waitFor('status 3', () => w.current().dispatchers.get('lb1')?.generation === 3);
      assert.throws(() => pub.update({ ...status, generation: -1 }), { code: 'SY_ERR_INVALID_ARGUMENT' });
      await pub.close();
      await waitFor('status gone', () => !w.current().dispatchers.has('lb1'));
    });
  });
}

conformance('embedded', embeddedBackend);
conformance('etcd', etcdBackend);

describe('etcd store resource hygiene', () => {
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

  it('etcd store - a lease lost in a partition leaves no timer behind once the store is closed', async (t) => {
    const cluster = await startEtcd();
    t.after(() => cluster.stop());
    const url = new URL(cluster.endpoints[0] ?? '');
    const proxy = await startFaultProxy({ host: url.hostname, port: Number(url.port) });
    t.after(() => proxy.close());
    const before = timers();
    const store = await createEtcdStore({ endpoints: [proxy.url], logger: silent });
    try {
      const lease = await store.grantLease(2000);
      let lost = false;
      lease.onLost(() => {
        lost = true;
      });
      await store.put('/hygiene/k', 'v', { lease });
      const rec = await record(t, store, '/hygiene/', 1);
      // A partition longer than the TTL, then recovery: the sequence in which etcd3's own
      // autoKeepAlive leaves an interval running forever (why EtcdLease keeps leases alive
      // itself). This checks that nothing of ours is left running either.
      proxy.block();
      await waitFor('lease lost', () => lost, 6000);
      proxy.unblock();
      await waitFor('watch back', () => rec.connection.at(-1) === true, 5000);
      const again = await store.grantLease(2000);
      await store.put('/hygiene/k', 'v2', { lease: again });
      await again.revoke();
      await rec.watch.close();
    } finally {
      await store.close();
    }
    await waitFor('no timers left by the store', () => timers() <= before, 3000);
  });
});

describe('etcd store on a half-open connection', () => {
  it('etcd store - a watch whose connection goes silent notices within its liveness check and misses nothing', async (t) => {
    const cluster = await startEtcd();
    t.after(() => cluster.stop());
    const url = new URL(cluster.endpoints[0] ?? '');
    const proxy = await startFaultProxy({ host: url.hostname, port: Number(url.port) });
    t.after(() => proxy.close());
    const store = await createEtcdStore({ endpoints: [proxy.url], logger: silent });
    t.after(() => store.close());
    const writer = await createEtcdStore({ endpoints: cluster.endpoints, logger: silent });
    t.after(() => writer.close());
    const rev = await writer.put('/halfopen/a', '1');
    const rec = await record(t, store, '/halfopen/', rev);
    await waitFor('first event', () => rec.events.length === 1);
    // No FIN, no RST: the stream just stops carrying bytes, as behind a dead NAT or firewall.
    proxy.freeze();
    const frozenAt = Date.now();
    await writer.put('/halfopen/b', '2');
    await waitFor('watch reports the loss', () => rec.connection.includes(false), 20_000);
    const noticedMs = Date.now() - frozenAt;
    t.diagnostic(`half-open watch noticed after ${noticedMs} ms`);
    // 10 s of silence, checked every second, then one ping under the 1 s call deadline.
    assert.ok(noticedMs <= 10_000 + 1_000 + 1_000 + 1_500, `noticed after ${noticedMs} ms`);
    proxy.unblock();
    await waitFor('watch back', () => rec.connection.at(-1) === true, 10_000);
    await writer.put('/halfopen/c', '3');
    await waitFor('events after the gap', () => rec.events.length === 3, 5000);
    assert.deepEqual(
      rec.events.map((e) => e.key),
      ['/halfopen/a', '/halfopen/b', '/halfopen/c'],
    );
  });
});

describe('registry on a 3-member etcd cluster', () => {
  it('etcd cluster - leader SIGKILL: writes resume within seconds, the record stays, the watch goes on', async (t) => {
    const startAt = Date.now();
    const cluster = await startEtcd({ members: 3 });
    t.diagnostic(`3 members healthy in ${Date.now() - startAt} ms`);
    t.after(() => cluster.stop());
    const store = await createEtcdStore({ endpoints: cluster.endpoints, logger: silent });
    t.after(() => store.close());
    const observer = await createEtcdStore({ endpoints: cluster.endpoints, logger: silent });
    t.after(() => observer.close());
    const reg = createRegistry(store, { logger: silent });
    t.after(() => reg.close());
    const watcherReg = createRegistry(observer, { logger: silent });
    t.after(() => watcherReg.close());

    let n5Missing = false;
    const w = await watcherReg.watchView((v) => {
      if (!v.nodes.has('n5')) n5Missing = true;
    });
    const a = await reg.announce(nodeInput('n5', 5075), { ttlMs: 3000 }); // the agent's default
    t.after(() => a.withdraw().catch(() => undefined));
    await waitFor('n5 in view', () => w.current().nodes.has('n5'));
    n5Missing = false;

    const leader = await cluster.leaderName();
    await cluster.kill(leader, 'SIGKILL');
    const killedAt = Date.now();
    let writes = 0;
    await waitFor(
      'a write after the leader died',
      async () => {
        try {
          await store.put('/switchyard-test/after-kill', String(++writes));
          return true;
        } catch {
          return false;
        }
      },
      8000,
    );
    const recoveredMs = Date.now() - killedAt;
    t.diagnostic(
      `leader ${leader} SIGKILLed; a write succeeded again after ${recoveredMs} ms (${writes} attempts)`,
    );
    assert.ok(recoveredMs < 5000, `writes resumed after ${recoveredMs} ms`);

    await a.update({ calls: 42 });
    await waitFor('update seen by the watch', () => w.current().nodes.get('n5')?.calls === 42, 8000);
    await sleep(3500); // longer than the TTL: the lease must have survived the election
    assert.equal(w.current().nodes.has('n5'), true);
    assert.equal(n5Missing, false, 'n5 never left the view');

    // The killed member rejoins on its data dir.
    const restartAt = Date.now();
    await cluster.restart(leader);
    t.diagnostic(`member ${leader} restarted and healthy in ${Date.now() - restartAt} ms`);
    assert.ok(cluster.members.every((m) => m.pid > 0));
  });
});

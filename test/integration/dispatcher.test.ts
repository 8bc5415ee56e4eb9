import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createSilentLogger } from '../../src/core/logger.ts';
import { createMetricsRegistry } from '../../src/core/metrics.ts';
import { createDispatcher, type DispatcherHandle } from '../../src/dispatcher/dispatcher.ts';
import type { KamailioRpc } from '../../src/net/kamailio-rpc-types.ts';
import { createOptionsPinger } from '../../src/net/options-pinger.ts';
import { createRegistry, type KvStore, openStore } from '../../src/registry/index.ts';
import { testDispatcherConfig } from '../harness/dispatcher.ts';
import { type EtcdCluster, startEtcd } from '../harness/etcd.ts';
import { type KamailioInstance, startKamailio } from '../harness/kamailio.ts';
import { loopbackHost } from '../harness/ports.ts';
import { runSippUac, type SippUas, startSippUas } from '../harness/sipp.ts';
import { sleep, waitFor } from '../harness/wait.ts';

/**
 * The core loop on real components: etcd 3.4, Kamailio 5.6 (reload_delta 1 s, OPTIONS every
 * 1 s), sipp backends answering OPTIONS and calls. Each test gets its own key prefix and its own
 * Kamailio; the etcd and the backends are shared.
 */

const T0 = new Date().toISOString();
let etcd: EtcdCluster;
const backends: SippUas[] = [];
const stores: KvStore[] = [];
let prefixCounter = 0;
let dispatcherCounter = 0;

before(async () => {
  etcd = await startEtcd({ members: 1 });
  for (let i = 0; i < 3; i++) backends.push(await startSippUas({ ip: loopbackHost(), port: 5060 }));
});

after(async () => {
  for (const s of stores) await s.close().catch(() => {});
  for (const b of backends) await b.stop().catch(() => {});
  await etcd?.stop();
});

interface Rig {
  prefix: string;
  store: KvStore;
  registry: ReturnType<typeof createRegistry>;
  kamailio: KamailioInstance;
  dispatcher: DispatcherHandle;
  metrics: ReturnType<typeof createMetricsRegistry>;
  close(): Promise<void>;
}

async function rig(
  opts: {
    kamailio?: KamailioInstance;
    prefix?: string;
    /** Registry spec; the shared one-member etcd when absent. */
    registry?: string;
    massRemoval?: { maxFraction: number; alwaysAllow: number };
  } = {},
): Promise<Rig> {
  const prefix = opts.prefix ?? `/sy-test-${process.pid}-${++prefixCounter}`;
  const logger = createSilentLogger();
  const store = await openStore(opts.registry ?? etcd.spec, { callTimeoutMs: 1000, logger });
  stores.push(store);
  const registry = createRegistry(store, { prefix, logger });
  const kamailio = opts.kamailio ?? (await startKamailio({ reloadDeltaS: 1, pingIntervalS: 1 }));
  const pinger = await createOptionsPinger({ logger });
  const metrics = createMetricsRegistry();
  const dispatcher = createDispatcher({
    config: testDispatcherConfig(kamailio, {
      name: `d${++dispatcherCounter}`,
      massRemoval: {
        maxFraction: opts.massRemoval?.maxFraction ?? 1,
        alwaysAllow: opts.massRemoval?.alwaysAllow ?? 1,
        windowMs: 10_000,
        probeTimeoutMs: 800,
        recheckIntervalMs: 500,
      },
    }),
    registry,
    rpc: kamailio.rpc,
    probe: async (uri, timeoutMs) => (await pinger.probe(uri, { timeoutMs })).up,
    logger,
    metrics,
  });
  await dispatcher.start();
  return {
    prefix,
    store,
    registry,
    kamailio,
    dispatcher,
    metrics,
    async close() {
      await dispatcher.close();
      await pinger.close();
      await registry.close();
      if (!opts.kamailio) await kamailio.stop();
    },
  };
}

const record = (id: string, b: SippUas, over: Record<string, unknown> = {}) => ({
  id,
  setId: 1,
  uri: b.uri,
  state: 'ready' as const,
  startedAt: T0,
  updatedAt: T0,
  ...over,
});

async function flagsOf(rpc: KamailioRpc): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const d of await rpc.listDispatchers()) out[d.attrs.duid ?? d.uri] = d.flags[0] ?? '?';
  return out;
}

describe('dispatcher on real Kamailio and etcd', { timeout: 240_000 }, () => {
  test('dispatcher - join: announced nodes appear with duid and attrs; calls reach only them', async () => {
    const r = await rig();
    try {
      const [b0, b1, b2] = backends as [SippUas, SippUas, SippUas];
      const a0 = await r.registry.announce(record('node-a', b0, { weight: 30 }), { ttlMs: 3000 });
      const a1 = await r.registry.announce(record('node-b', b1), { ttlMs: 3000 });
      await waitFor(async () => Object.keys(await flagsOf(r.kamailio.rpc)).length === 2, {
        what: 'two nodes',
      });
      const dests = await r.kamailio.rpc.listDispatchers();
      const a = dests.find((d) => d.attrs.duid === 'node-a')!;
      assert.equal(a.uri, b0.uri);
      assert.equal(a.attrs.rweight, 30);
      const file = await readFile(r.kamailio.listFile, 'utf8');
      assert.match(file, /duid=node-a;weight=75;rweight=30/);
      await waitFor(async () => Object.values(await flagsOf(r.kamailio.rpc)).every((f) => f === 'A'), {
        what: 'both active',
      });
      const calls = await runSippUac({
        target: `${r.kamailio.sipIp}:${r.kamailio.sipPort}`,
        ip: loopbackHost(),
        port: 5060,
        calls: 20,
        rate: 20,
        holdMs: 100,
      });
      assert.equal(calls.failed, 0);
      assert.equal(calls.successful, 20);
      assert.ok(
        (calls.perBackend[b0.ip] ?? 0) > 0 && (calls.perBackend[b1.ip] ?? 0) > 0,
        JSON.stringify(calls),
      );
      assert.equal(calls.perBackend[b2.ip] ?? 0, 0, 'the unannounced backend gets no call');
      assert.ok(r.dispatcher.status().generation >= 1);
      await a0.withdraw();
      await a1.withdraw();
    } finally {
      await r.close();
    }
  });

  test('dispatcher - drain and undrain take effect at once, with no reload', async () => {
    const r = await rig();
    try {
      const [b0, b1] = backends as [SippUas, SippUas];
      await r.registry.announce(record('n1', b0), { ttlMs: 3000 });
      const n2 = await r.registry.announce(record('n2', b1), { ttlMs: 3000 });
      await waitFor(async () => (await flagsOf(r.kamailio.rpc)).n2 === 'A', { what: 'n2 active' });
      const t0 = performance.now();
      await r.registry.setIntent('n2', { drain: true, reason: 'maintenance' });
      await waitFor(async () => (await flagsOf(r.kamailio.rpc)).n2 === 'D', {
        what: 'n2 disabled',
        intervalMs: 5,
      });
      const drainMs = performance.now() - t0;
      assert.ok(drainMs < 1000, `drain took ${drainMs} ms`);
      assert.match(await readFile(r.kamailio.listFile, 'utf8'), /sip:\S+ 4 0 duid=n2;/);
      const calls = await runSippUac({
        target: `${r.kamailio.sipIp}:${r.kamailio.sipPort}`,
        ip: loopbackHost(),
        port: 5060,
        calls: 10,
        rate: 20,
        holdMs: 100,
      });
      assert.equal(calls.failed, 0);
      assert.equal(calls.perBackend[b1.ip] ?? 0, 0, 'no new call reaches the drained node');
      // The node re-announcing itself must not undo the operator's drain.
      await n2.update({ version: 'again' });
      await sleep(600);
      assert.equal((await flagsOf(r.kamailio.rpc)).n2, 'D');
      await r.registry.setIntent('n2', { drain: false });
      await waitFor(async () => (await flagsOf(r.kamailio.rpc)).n2 === 'A', { what: 'n2 back' });
    } finally {
      await r.close();
    }
  });

  test('dispatcher - weight change reloads with the new attributes', async () => {
    const r = await rig();
    try {
      const [b0, b1] = backends as [SippUas, SippUas];
      await r.registry.announce(record('w1', b0), { ttlMs: 3000 });
      await r.registry.announce(record('w2', b1), { ttlMs: 3000 });
      await waitFor(async () => (await r.kamailio.rpc.listDispatchers()).length === 2);
      await r.registry.setIntent('w1', { weight: 90 });
      await waitFor(
        async () =>
          (await r.kamailio.rpc.listDispatchers()).find((d) => d.attrs.duid === 'w1')?.attrs.rweight === 90,
        { what: 'rweight 90' },
      );
      const w1 = (await r.kamailio.rpc.listDispatchers()).find((d) => d.attrs.duid === 'w1')!;
      assert.equal(w1.attrs.weight, 90);
      await r.registry.setIntent('w1', { weight: null });
      await waitFor(
        async () =>
          (await r.kamailio.rpc.listDispatchers()).find((d) => d.attrs.duid === 'w1')?.attrs.rweight === 10,
        { what: 'weight cleared' },
      );
    } finally {
      await r.close();
    }
  });

  test('dispatcher - a node whose lease expires is disabled then removed', async () => {
    const r = await rig();
    try {
      const [b0, b1] = backends as [SippUas, SippUas];
      await r.registry.announce(record('keep', b0), { ttlMs: 2000 });
      const gone = await r.registry.announce(record('gone', b1), { ttlMs: 1000 });
      await waitFor(async () => (await flagsOf(r.kamailio.rpc)).gone === 'A', { what: 'gone active' });
      const t0 = performance.now();
      gone.release(); // the agent dies: no more keep-alives
      await waitFor(async () => (await flagsOf(r.kamailio.rpc)).gone !== 'A', {
        timeoutMs: 5000,
        what: 'disabled',
      });
      const disabledMs = performance.now() - t0;
      await waitFor(async () => (await flagsOf(r.kamailio.rpc)).gone === undefined, {
        timeoutMs: 5000,
        what: 'removed',
      });
      assert.ok(disabledMs < 3500, `lease 1 s, disabled after ${disabledMs} ms`);
      assert.equal((await flagsOf(r.kamailio.rpc)).keep, 'A');
    } finally {
      await r.close();
    }
  });

  test('dispatcher - Kamailio restarted with an old file, or changed by hand, is repaired', async () => {
    const r = await rig();
    try {
      const [b0, b1] = backends as [SippUas, SippUas];
      await r.registry.announce(record('r1', b0), { ttlMs: 3000 });
      await r.registry.announce(record('r2', b1), { ttlMs: 3000 });
      await waitFor(
        async () => Object.keys(await flagsOf(r.kamailio.rpc)).length === 2 && r.dispatcher.status().inSync,
      );
      // Someone disables r1 by hand over RPC: the registry says it is ready, so it comes back.
      await r.kamailio.rpc.setDuidState('d', 1, 'r1');
      await waitFor(async () => (await flagsOf(r.kamailio.rpc)).r1 === 'A', { what: 'r1 re-enabled' });
      assert.ok(r.dispatcher.status().driftRepairs >= 1);
      // Kamailio restarts with an old file that knows only r1.
      const before = r.dispatcher.status().driftRepairs;
      await r.kamailio.stop();
      await writeFile(r.kamailio.listFile, `1 ${b0.uri} 0 0 duid=r1;weight=100;rweight=10\n`);
      await r.kamailio.restart();
      await waitFor(async () => Object.keys(await flagsOf(r.kamailio.rpc)).length === 2, {
        timeoutMs: 8000,
        what: 'r2 restored after restart',
      });
      await waitFor(() => r.dispatcher.status().inSync, { what: 'in sync' });
      assert.ok(r.dispatcher.status().driftRepairs > before);
    } finally {
      await r.close();
    }
  });

  test('dispatcher - garbage and injection in the registry never reach dispatcher.list', async () => {
    const r = await rig();
    try {
      const [b0] = backends as [SippUas];
      await r.registry.announce(record('good', b0), { ttlMs: 3000 });
      const bad: Record<string, string> = {
        broken: '{"id":"broken",',
        spaces: JSON.stringify(record('spaces', b0, { uri: 'sip:10.0.0.1 0 0 duid=x' })),
        inject: JSON.stringify(record('inject', b0, { uri: 'sip:10.0.0.2;weight=100' })),
        newline: JSON.stringify(record('newline', b0, { uri: 'sip:10.0.0.3\n1 sip:10.6.6.6 0 0' })),
        heavy: JSON.stringify(record('heavy', b0, { uri: 'sip:10.0.0.4', weight: 1000 })),
        types: JSON.stringify(record('types', b0, { uri: 'sip:10.0.0.5', setId: 'one' })),
        huge: JSON.stringify(record('huge', b0, { uri: 'sip:10.0.0.6', version: 'x'.repeat(100_000) })),
        mismatch: JSON.stringify(record('other-id', b0, { uri: 'sip:10.0.0.7' })),
      };
      for (const [id, value] of Object.entries(bad)) await r.store.put(`${r.prefix}/nodes/${id}`, value);
      await r.store.put(
        `${r.prefix}/nodes/bad;id`,
        JSON.stringify(record('bad;id', b0, { uri: 'sip:10.0.0.8' })),
      );
      await waitFor(async () => (await flagsOf(r.kamailio.rpc)).good === 'A', { what: 'good node' });
      await sleep(300);
      const list = await r.kamailio.rpc.listDispatchers();
      assert.deepEqual(
        list.map((d) => d.attrs.duid),
        ['good'],
      );
      const file = await readFile(r.kamailio.listFile, 'utf8');
      assert.doesNotMatch(file, /10\.0\.0\.|10\.6\.6\.6|rweight=1000|bad;id/);
      const text = await r.metrics.metrics();
      const rejected = Number(/switchyard_dispatcher_rejected_records (\d+)/.exec(text)?.[1]);
      assert.ok(rejected >= 8, `rejected metric ${rejected}`);
    } finally {
      await r.close();
    }
  });

  test('dispatcher - registry outage: fail-static, nothing flaps, then convergence', async () => {
    const r = await rig();
    try {
      const [b0, b1] = backends as [SippUas, SippUas];
      await r.registry.announce(record('o1', b0), { ttlMs: 2000 });
      await r.registry.announce(record('o2', b1), { ttlMs: 2000 });
      await waitFor(async () => Object.values(await flagsOf(r.kamailio.rpc)).join() === 'A,A', {
        what: 'both up',
      });
      const fileBefore = await readFile(r.kamailio.listFile, 'utf8');
      const member = etcd.members[0]!.name;
      await etcd.kill(member, 'SIGKILL');
      const seen = new Set<string>();
      const until = Date.now() + 5000; // longer than the 2 s lease TTL
      while (Date.now() < until) {
        seen.add(JSON.stringify(await flagsOf(r.kamailio.rpc)));
        await sleep(100);
      }
      for (const s of seen)
        assert.deepEqual(Object.values(JSON.parse(s)).sort(), ['A', 'A'], `flapped: ${s}`);
      assert.equal(
        await readFile(r.kamailio.listFile, 'utf8'),
        fileBefore,
        'list file untouched during the outage',
      );
      await etcd.restart(member);
      // A change made after the outage is applied: the dispatcher converged.
      await waitFor(
        async () => {
          await r.registry.setIntent('o1', { drain: true });
          return true;
        },
        { timeoutMs: 10_000, intervalMs: 200, what: 'registry writable again' },
      );
      await waitFor(async () => (await flagsOf(r.kamailio.rpc)).o1 === 'D', {
        timeoutMs: 10_000,
        what: 'o1 drained',
      });
      await waitFor(() => r.dispatcher.status().registryConnected && r.dispatcher.status().inSync);
      assert.equal((await flagsOf(r.kamailio.rpc)).o2, 'A');
    } finally {
      await r.close();
    }
  });

  test('dispatcher - mass removal is held until the nodes really fail OPTIONS', async () => {
    const extra: SippUas[] = [];
    for (let i = 0; i < 3; i++) extra.push(await startSippUas({ ip: loopbackHost(), port: 5060 }));
    const r = await rig({ massRemoval: { maxFraction: 0.5, alwaysAllow: 1 } });
    try {
      for (const [i, b] of extra.entries())
        await r.store.put(
          `${r.prefix}/static/m${i}`,
          JSON.stringify({ id: `m${i}`, uri: b.uri, addedAt: T0 }),
        );
      await waitFor(async () => Object.values(await flagsOf(r.kamailio.rpc)).join() === 'A,A,A', {
        what: 'three up',
      });
      // The registry loses the three records one after the other while the backends are healthy.
      // The first removal alone is within alwaysAllow and goes through; the next two, in the
      // same window, make it most of the set: they are held.
      await r.registry.removeStatic('m0');
      await waitFor(async () => Object.keys(await flagsOf(r.kamailio.rpc)).length === 2, {
        what: 'm0 removed',
      });
      await r.registry.removeStatic('m1');
      await sleep(200);
      await r.registry.removeStatic('m2');
      await waitFor(() => r.dispatcher.status().heldRemoval !== undefined, { what: 'hold reported' });
      await sleep(1500);
      assert.deepEqual(
        Object.keys(await flagsOf(r.kamailio.rpc)).sort(),
        ['m1', 'm2'],
        'held: still in Kamailio',
      );
      // Now they really die: OPTIONS fail, so the removal goes through.
      for (const b of extra.slice(1)) await b.stop();
      await waitFor(async () => (await r.kamailio.rpc.listDispatchers()).length === 0, {
        timeoutMs: 10_000,
        what: 'dead nodes removed',
      });
    } finally {
      await r.close();
      for (const b of extra) await b.stop().catch(() => {});
    }
  });

  test('dispatcher - two Kamailios with two dispatchers converge on identical lists', async () => {
    const first = await rig();
    const second = await rig({ prefix: first.prefix });
    try {
      const [b0, b1, b2] = backends as [SippUas, SippUas, SippUas];
      await first.registry.announce(record('c1', b0, { weight: 20 }), { ttlMs: 3000 });
      await first.registry.announce(record('c2', b1), { ttlMs: 3000 });
      await first.registry.putStatic({ id: 'c3', uri: b2.uri, addedAt: T0 });
      await first.registry.setIntent('c2', { drain: true });
      for (const x of [first, second])
        await waitFor(() => x.dispatcher.status().inSync && x.dispatcher.status().nodes === 3);
      assert.equal(
        await readFile(first.kamailio.listFile, 'utf8'),
        await readFile(second.kamailio.listFile, 'utf8'),
      );
      assert.deepEqual(await flagsOf(first.kamailio.rpc), await flagsOf(second.kamailio.rpc));
      assert.equal(first.dispatcher.status().appliedHash, second.dispatcher.status().appliedHash);
      // Each dispatcher publishes its status after it applies; an earlier status (from before
      // the drain intent was applied) may still be the stored one for a moment.
      await waitFor(
        async () => {
          const statuses = [...(await first.registry.snapshot()).dispatchers.values()];
          return (
            statuses.length === 2 &&
            statuses.every((s) => s.appliedHash === first.dispatcher.status().appliedHash)
          );
        },
        { what: 'both published statuses carry the applied hash' },
      );
    } finally {
      await second.close();
      await first.close();
    }
  });

  test('dispatcher - unreachable Kamailio is reported, then converges when it comes', async () => {
    const kamailio = await startKamailio({ reloadDeltaS: 1, pingIntervalS: 1 });
    await kamailio.stop();
    const r = await rig({ kamailio });
    try {
      const [b0] = backends as [SippUas];
      await r.registry.announce(record('u1', b0), { ttlMs: 3000 });
      await waitFor(() => r.dispatcher.status().lastError?.includes('kamailio'), { what: 'error reported' });
      assert.equal(r.dispatcher.ready().ok, false);
      assert.equal(r.dispatcher.status().kamailioReachable, false);
      await kamailio.restart();
      await waitFor(async () => (await flagsOf(kamailio.rpc)).u1 !== undefined, {
        timeoutMs: 8000,
        what: 'converged',
      });
      await waitFor(() => r.dispatcher.ready().ok);
    } finally {
      await r.close();
      await kamailio.stop();
    }
  });

  test('dispatcher - an unwritable list file is reported and Kamailio is left alone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sy-ro-'));
    const kamailio = await startKamailio({ reloadDeltaS: 1, pingIntervalS: 1 });
    const notADir = join(dir, 'plain-file');
    await writeFile(notADir, 'x');
    const logger = createSilentLogger();
    const store = await openStore(etcd.spec, { callTimeoutMs: 1000, logger });
    const registry = createRegistry(store, { prefix: `/sy-ro-${process.pid}`, logger });
    const dispatcher = createDispatcher({
      config: testDispatcherConfig(kamailio, {
        name: 'ro',
        listFile: join(notADir, 'dispatcher.list'),
        verifyIntervalMs: 300,
      }),
      registry,
      rpc: kamailio.rpc,
      probe: async () => true,
      logger,
      metrics: createMetricsRegistry(),
    });
    try {
      await registry.announce(record('ro1', backends[0]!), { ttlMs: 3000 });
      await dispatcher.start();
      await waitFor(() => dispatcher.status().lastError?.includes('cannot'), {
        what: 'write error reported',
      });
      assert.equal(dispatcher.ready().ok, false);
      assert.deepEqual(await kamailio.rpc.listDispatchers(), [], 'no reload of a file that was not written');
    } finally {
      await dispatcher.close();
      await registry.close();
      await store.close();
      await kamailio.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('dispatcher on a 3-member etcd cluster', { timeout: 120_000 }, () => {
  test('dispatcher - the etcd leader is SIGKILLed: Kamailio keeps its set, then a drain goes through', async (t) => {
    const cluster = await startEtcd({ members: 3 });
    const r = await rig({ registry: cluster.spec });
    let killed: string | undefined;
    try {
      const [b0, b1] = backends as [SippUas, SippUas];
      await r.registry.announce(record('l1', b0), { ttlMs: 4000 });
      await r.registry.announce(record('l2', b1), { ttlMs: 4000 });
      await waitFor(async () => Object.values(await flagsOf(r.kamailio.rpc)).join() === 'A,A', {
        what: 'both up',
      });
      killed = await cluster.leaderName();
      const t0 = performance.now();
      await cluster.kill(killed, 'SIGKILL');
      // While the cluster elects a new leader, nothing Kamailio routes to may change.
      const until = Date.now() + 3000;
      while (Date.now() < until) {
        assert.deepEqual(await flagsOf(r.kamailio.rpc), { l1: 'A', l2: 'A' }, 'no flap during the election');
        await sleep(100);
      }
      await waitFor(
        async () => {
          await r.registry.setIntent('l1', { drain: true, reason: 'leader test' });
          return true;
        },
        { timeoutMs: 15_000, intervalMs: 200, what: 'registry writable after the election' },
      );
      await waitFor(async () => (await flagsOf(r.kamailio.rpc)).l1 === 'D', {
        timeoutMs: 10_000,
        what: 'l1 drained through the new leader',
      });
      t.diagnostic(`leader ${killed} killed; drain applied ${Math.round(performance.now() - t0)} ms later`);
      assert.equal((await flagsOf(r.kamailio.rpc)).l2, 'A', 'the other node kept its lease');
      await waitFor(() => r.dispatcher.status().registryConnected && r.dispatcher.status().inSync);
    } finally {
      await r.close();
      await cluster.stop();
    }
  });
});

/**
 * npm run bench:convergence — time from a registry change to Kamailio's dispatcher.list showing
 * it, on real etcd 3.4 and real Kamailio 5.6 (reload_delta 1 s), plus render-and-apply of a
 * 1,000-node set. Writes bench/results/convergence.json and the table in docs/benchmarks.md.
 *
 * Kamailio is polled over JSON-RPC every ~2 ms; the poll itself costs 0.5-3 ms, which is included
 * in every figure (it is what an observer of Kamailio can see).
 * Usage: node bench/convergence.ts [--events N] (default 50 per measurement)
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSilentLogger } from '../src/core/logger.ts';
import { createMetricsRegistry } from '../src/core/metrics.ts';
import { createDispatcher } from '../src/dispatcher/dispatcher.ts';
import type { KamailioRpc } from '../src/net/kamailio-rpc-types.ts';
import { type ListDestination, renderDispatcherList } from '../src/proto/dispatcher-list.ts';
import { createRegistry, type KvStore, openStore, type Registry } from '../src/registry/index.ts';
import { testDispatcherConfig } from '../test/harness/dispatcher.ts';
import { startEtcd } from '../test/harness/etcd.ts';
import { type KamailioInstance, startKamailio } from '../test/harness/kamailio.ts';
import { sleep, waitFor } from '../test/harness/wait.ts';
import { replaceBlock, type Summary, summarize } from './stats.ts';

const EVENTS = Number(process.argv[process.argv.indexOf('--events') + 1]) || 50;
const THOUSAND_RUNS = 20;
const RELOAD_DELTA_MS = 1000;
// etcd refuses to expire a lease sooner than its minimum TTL (1.5 x election timeout, rounded up
// to 2 s with the default 1 s election timeout): a shorter TTL would silently be 2 s.
const LEASE_TTL_MS = 2000;
const T0 = new Date().toISOString();
const logger = createSilentLogger();

async function flagOf(rpc: KamailioRpc, duid: string): Promise<string | undefined> {
  const d = (await rpc.listDispatchers()).find((x) => x.attrs.duid === duid);
  return d?.flags[0];
}

async function until(
  rpc: KamailioRpc,
  duid: string,
  want: (flag: string | undefined) => boolean,
): Promise<number> {
  await waitFor(async () => want(await flagOf(rpc, duid)), { timeoutMs: 15_000, intervalMs: 2, what: duid });
  return performance.now();
}

const record = (id: string, uri: string) => ({
  id,
  setId: 1,
  uri,
  state: 'ready' as const,
  startedAt: T0,
  updatedAt: T0,
});

function benchDispatcher(kamailio: KamailioInstance, registry: Registry) {
  return createDispatcher({
    config: testDispatcherConfig(kamailio, {
      name: 'bench',
      reloadDeltaMs: RELOAD_DELTA_MS,
      verifyIntervalMs: 2000,
      statusTtlMs: 10_000,
    }),
    registry,
    rpc: kamailio.rpc,
    probe: async () => true,
    logger,
    metrics: createMetricsRegistry(),
  });
}

async function withRig<T>(
  registrySpec: string,
  fn: (r: { registry: Registry; store: KvStore; kamailio: KamailioInstance; rpc: KamailioRpc }) => Promise<T>,
  opts: { pingIntervalS?: number; startDispatcher?: boolean } = {},
): Promise<T> {
  const kamailio = await startKamailio({
    reloadDeltaS: RELOAD_DELTA_MS / 1000,
    pingIntervalS: opts.pingIntervalS ?? 5,
  });
  const store = await openStore(registrySpec, { callTimeoutMs: 5000, logger });
  const registry = createRegistry(store, { prefix: `/bench-${process.pid}-${Date.now()}`, logger });
  const dispatcher = opts.startDispatcher === false ? undefined : benchDispatcher(kamailio, registry);
  await dispatcher?.start();
  try {
    return await fn({ registry, store, kamailio, rpc: kamailio.rpc });
  } finally {
    await dispatcher?.close();
    await registry.close();
    await store.close();
    await kamailio.stop();
  }
}

/** Drain then undrain a node N times; each sample is intent write start -> Kamailio shows D (or A). */
async function measureDrain(registrySpec: string): Promise<{ drain: number[]; undrain: number[] }> {
  return withRig(registrySpec, async ({ registry, rpc }) => {
    await registry.announce(record('drainee', 'sip:127.0.0.1:5999'), { ttlMs: 5000 });
    await registry.announce(record('other', 'sip:127.0.0.1:5998'), { ttlMs: 5000 });
    await until(rpc, 'drainee', (f) => f === 'A');
    const drain: number[] = [];
    const undrain: number[] = [];
    for (let i = 0; i < EVENTS; i++) {
      let t = performance.now();
      await registry.setIntent('drainee', { drain: true });
      drain.push((await until(rpc, 'drainee', (f) => f === 'D')) - t);
      await sleep(20 + Math.random() * 30);
      t = performance.now();
      await registry.setIntent('drainee', { drain: false });
      undrain.push((await until(rpc, 'drainee', (f) => f !== 'D')) - t);
      await sleep(20 + Math.random() * 30);
    }
    return { drain, undrain };
  });
}

/**
 * Join: announce -> listed in Kamailio, two ways. "Right after a reload": the join follows the
 * previous node's removal (itself a reload), so it pays the reload_delta wait, the worst case.
 * "Quiet": the last reload was more than reload_delta ago, the common case.
 * Loss: release the lease (the agent dies) -> etcd deletes the key after the TTL -> the watch
 * delivers the delete -> Kamailio shows the node disabled. Measured from the delete event seen
 * by a separate watcher (the registry change) and, separately, from the release (includes TTL).
 */
async function measureJoinAndLoss(registrySpec: string) {
  return withRig(registrySpec, async ({ registry, store, rpc }) => {
    const join: number[] = [];
    const joinQuiet: number[] = [];
    const lossFromExpiry: number[] = [];
    const lossFromRelease: number[] = [];
    const removed: number[] = [];
    const deletedAt = new Map<string, number>();
    const prefixWatch = await store.watch('/', (await store.list('/__none__')).revision + 1, {
      onEvents: (events) => {
        for (const e of events)
          if (e.type === 'delete') deletedAt.set(e.key.split('/').pop()!, performance.now());
      },
    });
    await registry.announce(record('anchor', 'sip:127.0.0.1:5997'), { ttlMs: 5000 });
    try {
      for (let i = 0; i < 2 * EVENTS; i++) {
        const id = `j${i}`;
        const quiet = i % 2 === 1;
        if (quiet) await sleep(RELOAD_DELTA_MS + 100);
        const t = performance.now();
        const a = await registry.announce(record(id, `sip:127.0.0.1:${6000 + i}`), { ttlMs: LEASE_TTL_MS });
        (quiet ? joinQuiet : join).push((await until(rpc, id, (f) => f !== undefined)) - t);
        await sleep(50 + Math.random() * 100);
        const released = performance.now();
        a.release();
        const disabled = await until(rpc, id, (f) => f !== 'A');
        await waitFor(() => deletedAt.has(id), { timeoutMs: 5000, intervalMs: 1 });
        lossFromExpiry.push(disabled - deletedAt.get(id)!);
        lossFromRelease.push(disabled - released);
        removed.push((await until(rpc, id, (f) => f === undefined)) - deletedAt.get(id)!);
      }
    } finally {
      await prefixWatch.close();
    }
    return { join, joinQuiet, lossFromExpiry, lossFromRelease, removed };
  });
}

/** 1,000 nodes: pure render time, and registry-to-Kamailio apply time (file + reload + verify). */
async function measureThousand(registrySpec: string) {
  const dests: ListDestination[] = Array.from({ length: 1000 }, (_, i) => ({
    setId: 1 + (i % 4),
    uri: `sip:127.3.${Math.floor(i / 250)}.${(i % 250) + 1}:5060`,
    duid: `n${i}`,
    enabled: i % 10 !== 0,
    priority: 0,
    weight: 1 + (i % 100),
  }));
  const render: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    renderDispatcherList(dests);
    render.push(performance.now() - t);
  }
  // Cold apply: the nodes are in the registry, a dispatcher starts, and the clock runs until
  // Kamailio lists all 1,000 (snapshot read, render, atomic write, dispatcher.reload, read-back).
  // Each run waits out reload_delta first so the figure is the apply, not Kamailio's spacing.
  // Kamailio must not send OPTIONS to a thousand addresses every second: ping every 60 s.
  const apply = await withRig(
    registrySpec,
    async ({ registry, kamailio, rpc }) => {
      const samples: number[] = [];
      for (let run = 0; run < THOUSAND_RUNS; run++) {
        const batch = dests.map((d) => ({ ...d, duid: `r${run}-${d.duid}` }));
        await Promise.all(
          batch.map((d) =>
            registry.putStatic({ id: d.duid, setId: d.setId, uri: d.uri, weight: d.weight, addedAt: T0 }),
          ),
        );
        await sleep(RELOAD_DELTA_MS + 100);
        const dispatcher = benchDispatcher(kamailio, registry);
        const t = performance.now();
        await dispatcher.start();
        await waitFor(
          async () =>
            (await rpc.listDispatchers()).filter((x) => x.attrs.duid?.startsWith(`r${run}-`)).length === 1000,
          { timeoutMs: 30_000, intervalMs: 2 },
        );
        samples.push(performance.now() - t);
        await dispatcher.close();
        await Promise.all(batch.map((d) => registry.removeStatic(d.duid)));
      }
      return samples;
    },
    { pingIntervalS: 60, startDispatcher: false },
  );
  return { render, apply };
}

async function main() {
  const etcd = await startEtcd({ members: 1 });
  const results: Record<string, Summary> = {};
  try {
    console.log(
      `bench: ${EVENTS} events per measurement, reload_delta ${RELOAD_DELTA_MS} ms, lease TTL ${LEASE_TTL_MS} ms`,
    );
    const d = await measureDrain(etcd.spec);
    results['drain (etcd)'] = summarize(d.drain);
    results['undrain (etcd)'] = summarize(d.undrain);
    console.log('drain done', results['drain (etcd)']);
    const dbDir = await mkdtemp(join(tmpdir(), 'sy-bench-'));
    const e = await measureDrain(`embedded:${join(dbDir, 'registry.db')}`).finally(() =>
      rm(dbDir, { recursive: true, force: true }),
    );
    results['drain (embedded)'] = summarize(e.drain);
    results['undrain (embedded)'] = summarize(e.undrain);
    console.log('embedded drain done', results['drain (embedded)']);
    const jl = await measureJoinAndLoss(etcd.spec);
    results['join, right after a reload (etcd)'] = summarize(jl.join);
    results['join, quiet (etcd)'] = summarize(jl.joinQuiet);
    results['node loss: key expired -> disabled (etcd)'] = summarize(jl.lossFromExpiry);
    results['node loss: key expired -> removed (etcd)'] = summarize(jl.removed);
    results[`node loss: agent stopped -> disabled, incl. TTL ${LEASE_TTL_MS} ms (etcd)`] = summarize(
      jl.lossFromRelease,
    );
    console.log('join/loss done', results['join, right after a reload (etcd)']);
    const k = await measureThousand(etcd.spec);
    results['1,000 nodes: render'] = summarize(k.render);
    results['1,000 nodes: registry -> applied in Kamailio'] = summarize(k.apply);
  } finally {
    await etcd.stop();
  }
  const meta = {
    date: new Date().toISOString(),
    events: EVENTS,
    reloadDeltaMs: RELOAD_DELTA_MS,
    leaseTtlMs: LEASE_TTL_MS,
  };
  await writeFile(
    new URL('./results/convergence.json', import.meta.url),
    `${JSON.stringify({ meta, results }, null, 2)}\n`,
  );
  const rows = Object.entries(results).map(
    ([name, s]) => `| ${name} | ${s.n} | ${s.p50} | ${s.p90} | ${s.p99} | ${s.max} |`,
  );
  const table = [
    `Run ${meta.date.slice(0, 16)}Z on the 2-core dev machine; Kamailio reload_delta ${RELOAD_DELTA_MS} ms, agent lease TTL ${LEASE_TTL_MS} ms. Times in ms.`,
    '',
    '| measurement | n | p50 | p90 | p99 | max |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
  const docUrl = new URL('../docs/benchmarks.md', import.meta.url);
  const doc = await readFile(docUrl, 'utf8').catch(() => '# Benchmarks\n');
  await writeFile(docUrl, replaceBlock(doc, 'convergence', table));
  console.log(table);
}

await main();

/**
 * npm run bench:agent — the agent on real etcd 3.4, real Kamailio 5.6 and the core-loop
 * dispatcher, with real sipp as the supervised SIP service and the fake AMI server.
 *
 * 1. Self-heal: the supervised process is SIGKILLed; time until Kamailio's own
 *    `dispatcher.list` shows the destination disabled (Kamailio's OPTIONS probing runs every
 *    10 s, so what disables it is the agent's record turning `down`). Then the agent restarts
 *    the process and the node comes back before the next kill.
 * 2. Footprint: `switchyard agent` as its own process (what runs in production), watching a
 *    node over AMI, idle and with 500 live calls plus 20 call events per second. RSS from
 *    /proc/PID/status every second; CPU from /proc/PID/stat over 10 s windows. The kernel counts
 *    CPU time in 10 ms ticks, so a 1 s window only tells 1 % from 2 %; 10 s windows read 0.1 %.
 *
 * Writes bench/results/agent.json and the `agent` block of docs/benchmarks.md.
 * Usage: node bench/agent.ts [--events N] (default 50 kills) [--seconds S] (default 150 per load)
 *   [--cpu-window S] (default 10)
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { agentConfigSchema } from '../src/agent/config.ts';
import { runAgent } from '../src/agent/index.ts';
import { createSilentLogger } from '../src/core/logger.ts';
import { createMetricsRegistry } from '../src/core/metrics.ts';
import { createDispatcher } from '../src/dispatcher/dispatcher.ts';
import type { KamailioRpc } from '../src/net/kamailio-rpc-types.ts';
import { createRegistry, openStore } from '../src/registry/index.ts';
import { testDispatcherConfig } from '../test/harness/dispatcher.ts';
import { startEtcd } from '../test/harness/etcd.ts';
import { startFakeAmi } from '../test/harness/fake-ami.ts';
import { startKamailio } from '../test/harness/kamailio.ts';
import { freeUdpPort, loopbackHost } from '../test/harness/ports.ts';
import { startSippUas } from '../test/harness/sipp.ts';
import { sleep, waitFor } from '../test/harness/wait.ts';
import { replaceBlock, type Summary, summarize } from './stats.ts';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) || def : def;
};
const EVENTS = arg('--events', 50);
const SECONDS = arg('--seconds', 150);
/** CPU window; --seconds should be a multiple of it. */
const CPU_WINDOW_S = arg('--cpu-window', 10);
const UAS_SCENARIO = resolve(import.meta.dirname, '../test/fixtures/sipp/uas_lb.xml');
const ROOT = resolve(import.meta.dirname, '..');
const BIN = resolve(ROOT, 'bin/switchyard.js');
/** What production sets (docs/guides/agent.md): 2 MB semi-spaces instead of up to 32 MB (1 MB costs more scavenges, about 0.2 % of a core, for no memory). */
const AGENT_NODE_OPTIONS = '--max-semi-space-size=2';
const CLK_TCK = 100; // Linux USER_HZ: /proc/PID/stat times are in 1/100 s
const logger = createSilentLogger();

async function flagOf(rpc: KamailioRpc, duid: string): Promise<string | undefined> {
  return (await rpc.listDispatchers()).find((d) => d.attrs.duid === duid)?.flags[0];
}

async function measureSelfHeal(etcdSpec: string): Promise<{ disabled: number[]; back: number[] }> {
  const kamailio = await startKamailio({ reloadDeltaS: 1, pingIntervalS: 10 });
  const store = await openStore(etcdSpec, { callTimeoutMs: 1000, logger });
  const prefix = `/bench-agent-${process.pid}`;
  const registry = createRegistry(store, { prefix, logger });
  const dispatcher = createDispatcher({
    config: testDispatcherConfig(kamailio, {
      name: 'bench-agent',
      verifyIntervalMs: 2000,
      statusTtlMs: 10_000,
    }),
    registry,
    rpc: kamailio.rpc,
    probe: async () => true,
    logger,
    metrics: createMetricsRegistry(),
  });
  await dispatcher.start();
  const ip = loopbackHost();
  const port = await freeUdpPort(ip);
  const agent = await runAgent(
    agentConfigSchema.parse({
      registry: etcdSpec,
      registryPrefix: prefix,
      nodeId: 'healer',
      sipUri: `sip:${ip}:${port}`,
      command: ['sipp', '-sf', UAS_SCENARIO, '-i', ip, '-p', String(port), '-bind_local', '-nostdin'],
      health: { optionsIntervalMs: 250, optionsTimeoutMs: 200, failuresToDown: 2, successesToUp: 2 },
      // Back-off kept short and the crash-loop limit out of reach: the benchmark kills on purpose.
      restart: { initialBackoffMs: 50, maxBackoffMs: 100, crashLoopRestarts: 1000, crashLoopWindowMs: 1000 },
      admin: { port: 0 },
    }),
    { logger },
  );
  const disabled: number[] = [];
  const back: number[] = [];
  try {
    await waitFor(async () => (await flagOf(kamailio.rpc, 'healer')) === 'A', { timeoutMs: 15_000 });
    for (let i = 0; i < EVENTS; i++) {
      const pid = agent.agent.status().pid;
      if (pid === undefined) throw new Error('no supervised process');
      const t0 = performance.now();
      process.kill(pid, 'SIGKILL');
      await waitFor(async () => (await flagOf(kamailio.rpc, 'healer')) === 'D', {
        timeoutMs: 5000,
        intervalMs: 2,
      });
      disabled.push(performance.now() - t0);
      await waitFor(async () => (await flagOf(kamailio.rpc, 'healer')) === 'A', {
        timeoutMs: 15_000,
        intervalMs: 5,
      });
      back.push(performance.now() - t0);
      await sleep(100 + Math.random() * 200);
    }
  } finally {
    await agent.stop();
    await dispatcher.close();
    await registry.close();
    await store.close();
    await kamailio.stop();
  }
  return { disabled, back };
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** CPU per window of CPU_WINDOW_S seconds, RSS every second. */
async function sampleProcess(pid: number, seconds: number): Promise<{ cpuPct: number[]; rss: number[] }> {
  const cpuPct: number[] = [];
  const rss: number[] = [];
  let ticks = cpuTicks(pid);
  let t = performance.now();
  for (let i = 1; i <= seconds; i++) {
    await sleep(1000);
    rss.push(rssMb(pid));
    if (i % CPU_WINDOW_S !== 0) continue;
    const nowTicks = cpuTicks(pid);
    const nowT = performance.now();
    cpuPct.push(((nowTicks - ticks) / CLK_TCK / ((nowT - t) / 1000)) * 100);
    ticks = nowTicks;
    t = nowT;
  }
  return { cpuPct, rss };
}

/**
 * The footprint is measured as production runs the agent: `bin/switchyard.js agent` on the
 * compiled dist/ (built here, so it is current), with the documented NODE_OPTIONS.
 */
function buildDist(): void {
  execFileSync(process.execPath, [resolve(ROOT, 'scripts/build.ts')], { stdio: 'ignore' });
  const built = statSync(resolve(ROOT, 'dist/.built')).mtimeMs;
  const stale = execFileSync('find', [resolve(ROOT, 'src'), '-newer', resolve(ROOT, 'dist/.built')], {
    encoding: 'utf8',
  }).trim();
  if (stale) throw new Error(`sources changed during the build (${stale}); dist/ from ${built} is stale`);
}

async function measureFootprint(etcdSpec: string) {
  buildDist();
  // The AMI user as docs/guides/agent.md configures it (read = system,call): no dialplan events.
  const ami = await startFakeAmi({ username: 'bench', secret: 'bench', readClasses: ['system', 'call'] });
  const uas = await startSippUas({ ip: loopbackHost(), port: 5060 });
  const child = spawn(
    process.execPath,
    [
      BIN,
      'agent',
      '--registry',
      etcdSpec,
      '--prefix',
      `/bench-footprint-${process.pid}`,
      '--node-id',
      'footprint',
      '--sip-uri',
      uas.uri,
      '--ami',
      `ami://bench:bench@127.0.0.1:${ami.port}`,
      '--admin-port',
      '0',
      '--log-level',
      'warn',
    ],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', NODE_OPTIONS: AGENT_NODE_OPTIONS },
    },
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error('agent did not start');
  let churn: NodeJS.Timeout | undefined;
  try {
    await sleep(5000); // start-up and first announce, then steady state
    const idle = await sampleProcess(pid, SECONDS);
    const live = Array.from({ length: 500 }, () => ami.addCall());
    // 20 call events per second: 10 calls end, 10 new ones start.
    churn = setInterval(() => {
      for (let k = 0; k < 10; k++) {
        const gone = live.shift();
        if (gone) ami.hangupCall(gone.uniqueid);
        live.push(ami.addCall());
      }
    }, 1000);
    await sleep(3000);
    const busy = await sampleProcess(pid, SECONDS);
    return { idle, busy };
  } finally {
    if (churn) clearInterval(churn);
    child.kill('SIGTERM');
    await new Promise((done) => child.once('exit', done));
    await uas.stop();
    await ami.close();
  }
}

async function main() {
  const etcd = await startEtcd({ members: 1 });
  const results: Record<string, Summary> = {};
  try {
    console.log(`bench agent: ${EVENTS} kills, ${SECONDS} s per footprint sample`);
    const heal = await measureSelfHeal(etcd.spec);
    results['service SIGKILLed -> disabled in Kamailio (ms)'] = summarize(heal.disabled);
    results['service SIGKILLed -> restarted and back in rotation (ms)'] = summarize(heal.back);
    console.log('self-heal done', results['service SIGKILLed -> disabled in Kamailio (ms)']);
    const fp = await measureFootprint(etcd.spec);
    results[`idle: CPU, % of one core (${CPU_WINDOW_S} s windows)`] = summarize(fp.idle.cpuPct);
    results['idle: RSS (MB)'] = summarize(fp.idle.rss);
    results[`500 calls, 20 call events/s: CPU, % of one core (${CPU_WINDOW_S} s windows)`] = summarize(
      fp.busy.cpuPct,
    );
    results['500 calls, 20 call events/s: RSS (MB)'] = summarize(fp.busy.rss);
  } finally {
    await etcd.stop();
  }
  const meta = {
    date: new Date().toISOString(),
    events: EVENTS,
    seconds: SECONDS,
    cpuWindowS: CPU_WINDOW_S,
    footprintCommand: `NODE_OPTIONS=${AGENT_NODE_OPTIONS} node bin/switchyard.js agent (compiled dist/)`,
  };
  await writeFile(
    new URL('./results/agent.json', import.meta.url),
    `${JSON.stringify({ meta, results }, null, 2)}\n`,
  );
  const rows = Object.entries(results).map(
    ([name, s]) => `| ${name} | ${s.n} | ${s.p50} | ${s.p90} | ${s.p99} | ${s.max} |`,
  );
  const table = [
    `Run ${meta.date.slice(0, 16)}Z on the 2-core dev machine; Kamailio's own OPTIONS probing every 10 s.`,
    `Footprint of \`${meta.footprintCommand}\`, as production runs it.`,
    '',
    '| measurement | n | p50 | p90 | p99 | max |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
  const docUrl = new URL('../docs/benchmarks.md', import.meta.url);
  const doc = await readFile(docUrl, 'utf8');
  await writeFile(docUrl, replaceBlock(doc, 'agent', table));
  console.log(table);
}

await main();

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type AgentConfigInput, agentConfigSchema } from '../../src/agent/config.ts';
import { runAgent } from '../../src/agent/index.ts';
import { createSilentLogger } from '../../src/core/logger.ts';
import { createMetricsRegistry } from '../../src/core/metrics.ts';
import { createDispatcher, type DispatcherHandle } from '../../src/dispatcher/dispatcher.ts';
import type { KamailioRpc } from '../../src/net/kamailio-rpc-types.ts';
import { createOptionsPinger } from '../../src/net/options-pinger.ts';
import { createRegistry, type KvStore, openStore, type Registry } from '../../src/registry/index.ts';
import { sippBindArgs } from '../../src/up/sipp-process.ts';
import { testDispatcherConfig } from '../harness/dispatcher.ts';
import { type EtcdCluster, startEtcd } from '../harness/etcd.ts';
import { startFakeAmi } from '../harness/fake-ami.ts';
import { type KamailioInstance, startKamailio } from '../harness/kamailio.ts';
import { freeUdpPort, loopbackHost } from '../harness/ports.ts';
import { runSippUac, type SippUas, startSippUas } from '../harness/sipp.ts';
import { sleep, waitFor } from '../harness/wait.ts';

/**
 * The agent on real components: etcd, Kamailio (its own OPTIONS probing slowed to every 10 s, so
 * that what disables a node quickly is visibly the agent), the core-loop dispatcher, real sipp
 * as the supervised SIP service, and the fake AMI server replaying Asterisk 20's transcripts.
 */

const UAS_SCENARIO = resolve(import.meta.dirname, '../fixtures/sipp/uas_lb.xml');
const MAIN = resolve(import.meta.dirname, '../../src/cli/main.ts');
const logger = createSilentLogger();

let etcd: EtcdCluster;
let kamailio: KamailioInstance;
let store: KvStore;
let staticBackend: SippUas;
let prefixCounter = 0;

before(async () => {
  etcd = await startEtcd({ members: 1 });
  kamailio = await startKamailio({ reloadDeltaS: 1, pingIntervalS: 10 });
  store = await openStore(etcd.spec, { callTimeoutMs: 1000, logger });
  staticBackend = await startSippUas({ ip: loopbackHost(), port: 5060 });
});

after(async () => {
  await staticBackend?.stop();
  await store?.close();
  await kamailio?.stop();
  await etcd?.stop();
});

/** argv of a sipp UAS that answers OPTIONS and calls: the supervised "Asterisk". */
function sippCommand(ip: string, port: number): string[] {
  return ['sipp', '-sf', UAS_SCENARIO, ...sippBindArgs(ip, port), '-nostdin'];
}

interface Rig {
  prefix: string;
  registry: Registry;
  dispatcher: DispatcherHandle;
  close(): Promise<void>;
}

/** A dispatcher driving the shared Kamailio from a fresh prefix. */
async function rig(): Promise<Rig> {
  const prefix = `/sy-agent-${process.pid}-${++prefixCounter}`;
  const registry = createRegistry(store, { prefix, logger });
  const pinger = await createOptionsPinger({ logger });
  const dispatcher = createDispatcher({
    config: testDispatcherConfig(kamailio, { name: `agent-test-${prefixCounter}` }),
    registry,
    rpc: kamailio.rpc,
    probe: async (uri, timeoutMs) => (await pinger.probe(uri, { timeoutMs })).up,
    logger,
    metrics: createMetricsRegistry(),
  });
  await dispatcher.start();
  return {
    prefix,
    registry,
    dispatcher,
    async close() {
      await dispatcher.close();
      await pinger.close();
      await registry.close();
    },
  };
}

function agentConfig(prefix: string, over: Partial<AgentConfigInput> & { sipUri: string; nodeId: string }) {
  return agentConfigSchema.parse({
    registry: etcd.spec,
    registryPrefix: prefix,
    leaseTtlMs: 2000,
    health: { optionsIntervalMs: 250, optionsTimeoutMs: 200, failuresToDown: 2, successesToUp: 2 },
    restart: { initialBackoffMs: 200, maxBackoffMs: 2000, crashLoopRestarts: 5, crashLoopWindowMs: 60_000 },
    drain: { deadlineMs: 3000, progressIntervalMs: 200 },
    stop: { graceMs: 2000 },
    admin: { port: 0 },
    ...over,
  });
}

async function flagsOf(rpc: KamailioRpc): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const d of await rpc.listDispatchers()) out[d.attrs.duid ?? d.uri] = d.flags[0] ?? '?';
  return out;
}

async function nodeState(registry: Registry, id: string): Promise<string | undefined> {
  return (await registry.snapshot()).nodes.get(id)?.state;
}

describe('agent on real etcd, Kamailio and sipp', { timeout: 300_000 }, () => {
  test('agent - announces only once ready: process up, AMI FullyBooted, OPTIONS 2xx', async () => {
    const r = await rig();
    const ami = await startFakeAmi({ username: 'sy', secret: 's3cret', booted: false });
    const ip = loopbackHost();
    const port = await freeUdpPort(ip);
    const a = await runAgent(
      agentConfig(r.prefix, {
        nodeId: 'ast1',
        sipUri: `sip:${ip}:${port}`,
        ami: `ami://sy:s3cret@127.0.0.1:${ami.port}`,
        command: sippCommand(ip, port),
      }),
      { logger },
    );
    try {
      // The SIP side answers, AMI is logged in, but Asterisk has not said FullyBooted.
      await waitFor(() => a.agent.status().healthy, { what: 'sipp answers OPTIONS' });
      await waitFor(() => ami.actions.some((x) => x.name.toLowerCase() === 'login'), { what: 'AMI login' });
      await sleep(600);
      assert.equal(await nodeState(r.registry, 'ast1'), undefined, 'not announced before FullyBooted');
      assert.equal(a.agent.status().phase, 'warm-up');
      ami.finishBoot();
      await waitFor(async () => (await nodeState(r.registry, 'ast1')) === 'ready', {
        what: 'announced ready',
      });
      await waitFor(async () => (await flagsOf(kamailio.rpc)).ast1 === 'A', { what: 'routed by Kamailio' });
      // Calls over AMI reach the record.
      ami.addCall();
      ami.addCall();
      await waitFor(async () => (await r.registry.snapshot()).nodes.get('ast1')?.calls === 2, {
        what: 'calls=2',
      });
      await a.stop();
      assert.equal(await nodeState(r.registry, 'ast1'), undefined, 'withdrawn on stop');
    } finally {
      await a.stop();
      await ami.close();
      await r.close();
    }
  });

  test('agent - a killed service is disabled in Kamailio at once, and comes back after the restart', async (t) => {
    const r = await rig();
    const ip = loopbackHost();
    const port = await freeUdpPort(ip);
    const a = await runAgent(
      agentConfig(r.prefix, { nodeId: 'sip1', sipUri: `sip:${ip}:${port}`, command: sippCommand(ip, port) }),
      { logger },
    );
    try {
      await waitFor(async () => (await flagsOf(kamailio.rpc)).sip1 === 'A', { what: 'sip1 routed' });
      const pid = a.agent.status().pid;
      assert.ok(pid !== undefined);
      const t0 = performance.now();
      process.kill(pid, 'SIGKILL');
      await waitFor(async () => (await flagsOf(kamailio.rpc)).sip1 === 'D', {
        intervalMs: 5,
        what: 'disabled',
      });
      const disabledMs = performance.now() - t0;
      t.diagnostic(`service SIGKILLed; disabled in Kamailio after ${Math.round(disabledMs)} ms`);
      // Kamailio's own probing runs every 10 s: only the agent can have been this fast.
      assert.ok(disabledMs < 1500, `disabled after ${disabledMs} ms`);
      await waitFor(async () => (await flagsOf(kamailio.rpc)).sip1 === 'A', {
        timeoutMs: 10_000,
        what: 'back after the restart',
      });
      assert.equal(a.agent.status().restarts, 1);
      assert.notEqual(a.agent.status().pid, pid);
    } finally {
      await a.stop();
      await r.close();
    }
  });

  test('agent - a crash loop gives up: failed, out of rotation, and says why', async () => {
    const r = await rig();
    const a = await runAgent(
      agentConfig(r.prefix, {
        nodeId: 'loop1',
        sipUri: 'sip:127.0.0.1:9',
        command: ['sh', '-c', 'exit 3'],
        restart: { initialBackoffMs: 20, maxBackoffMs: 100, crashLoopRestarts: 3, crashLoopWindowMs: 60_000 },
      }),
      { logger },
    );
    try {
      await waitFor(() => a.agent.status().phase === 'failed', { timeoutMs: 10_000, what: 'failed' });
      assert.match(a.agent.status().reason ?? '', /3 restarts within 60 s; last exit code 3/);
      assert.equal(a.agent.health().ok, false);
      assert.equal(await nodeState(r.registry, 'loop1'), undefined, 'never ready, never announced');
      await sleep(500);
      assert.equal(a.agent.status().phase, 'failed', 'no more restarts');
    } finally {
      await a.stop();
      await r.close();
    }
  });

  test('agent - stopping drains under load: zero failed calls, then the service stops', async (t) => {
    const r = await rig();
    const ip = loopbackHost();
    const port = await freeUdpPort(ip);
    await r.registry.putStatic({ id: 'other', uri: staticBackend.uri, addedAt: new Date().toISOString() });
    const a = await runAgent(
      agentConfig(r.prefix, {
        nodeId: 'drainee',
        sipUri: `sip:${ip}:${port}`,
        command: sippCommand(ip, port),
        drain: { deadlineMs: 2500, progressIntervalMs: 200 },
      }),
      { logger },
    );
    let stopped = false;
    try {
      await waitFor(async () => Object.values(await flagsOf(kamailio.rpc)).join() === 'A,A', {
        what: 'both up',
      });
      const pid = a.agent.status().pid!;
      const load = runSippUac({
        target: `${kamailio.sipIp}:${kamailio.sipPort}`,
        ip: loopbackHost(),
        port: 5060,
        calls: 60,
        rate: 20,
        holdMs: 1000,
      });
      await sleep(1200); // calls are up on both backends
      const t0 = performance.now();
      await a.stop();
      stopped = true;
      t.diagnostic(`drain and stop took ${Math.round(performance.now() - t0)} ms`);
      const calls = await load;
      assert.equal(calls.failed, 0, JSON.stringify(calls));
      assert.equal(calls.successful, 60);
      assert.ok((calls.perBackend[ip] ?? 0) > 0, 'the drained node had calls before the drain');
      assert.throws(() => process.kill(pid, 0), 'the service was stopped');
      assert.equal(await nodeState(r.registry, 'drainee'), undefined);
    } finally {
      if (!stopped) await a.stop();
      await r.registry.removeStatic('other');
      await r.close();
    }
  });

  test('agent - an operator drain waits for AMI calls to end; undrain returns the node', async () => {
    const r = await rig();
    const ami = await startFakeAmi({ username: 'sy', secret: 'pw' });
    const ip = loopbackHost();
    const port = await freeUdpPort(ip);
    const a = await runAgent(
      agentConfig(r.prefix, {
        nodeId: 'ast2',
        sipUri: `sip:${ip}:${port}`,
        ami: `ami://sy:pw@127.0.0.1:${ami.port}`,
        command: sippCommand(ip, port),
        drain: { deadlineMs: 30_000, progressIntervalMs: 100 },
      }),
      { logger },
    );
    try {
      await waitFor(async () => (await flagsOf(kamailio.rpc)).ast2 === 'A', { what: 'routed' });
      const c1 = ami.addCall();
      const c2 = ami.addCall();
      await waitFor(() => a.agent.status().calls === 2, { what: 'two calls counted' });
      await r.registry.setIntent('ast2', { drain: true, reason: 'test' });
      await waitFor(async () => (await flagsOf(kamailio.rpc)).ast2 === 'D', { what: 'disabled' });
      await waitFor(() => a.agent.status().phase === 'draining', { what: 'draining' });
      ami.hangupCall(c1.uniqueid);
      await sleep(300);
      assert.equal(a.agent.status().phase, 'draining', 'one call still up');
      ami.hangupCall(c2.uniqueid);
      await waitFor(() => a.agent.status().phase === 'drained', { what: 'drained' });
      assert.equal(await nodeState(r.registry, 'ast2'), 'drained');
      await r.registry.setIntent('ast2', { drain: false });
      await waitFor(() => a.agent.status().phase === 'up', { what: 'up again' });
      await waitFor(async () => (await flagsOf(kamailio.rpc)).ast2 === 'A', { what: 'routed again' });
    } finally {
      await a.stop();
      await ami.close();
      await r.close();
    }
    // Stopping with AMI: `core stop now` went out before the process signal, and never `core stop
    // gracefully`, which refuses the outbound legs of live calls and blinds AMI (anchors.md §5).
    assert.ok(
      ami.actions.some((x) => x.name === 'Command' && x.fields.some(([, v]) => v === 'core stop now')),
    );
    assert.ok(!ami.actions.some((x) => x.fields.some(([, v]) => /gracefully/i.test(v))), 'no graceful stop');
  });

  test('agent - hooks run in order with the phase and node in their environment; a hung hook does not wedge it', async () => {
    const r = await rig();
    const dir = await mkdtemp(join(tmpdir(), 'sy-hooks-'));
    const out = join(dir, 'hooks.log');
    const ip = loopbackHost();
    const port = await freeUdpPort(ip);
    const record = [
      'sh',
      '-c',
      `echo "$SWITCHYARD_PHASE $SWITCHYARD_PREVIOUS_PHASE $SWITCHYARD_NODE_ID $SWITCHYARD_SIP_URI" >> "$0"`,
      out,
    ];
    const a = await runAgent(
      agentConfig(r.prefix, {
        nodeId: 'hooked',
        sipUri: `sip:${ip}:${port}`,
        command: sippCommand(ip, port),
        hooks: {
          boot: { command: ['sleep', '30'], timeoutMs: 300 },
          'warm-up': { command: record },
          up: { command: record },
          stopped: { command: record },
        },
      }),
      { logger },
    );
    try {
      await waitFor(async () => (await nodeState(r.registry, 'hooked')) === 'ready', { what: 'ready' });
    } finally {
      await a.stop();
      await r.close();
    }
    const lines = (await readFile(out, 'utf8')).trim().split('\n');
    assert.deepEqual(lines, [
      `warm-up boot hooked sip:${ip}:${port}`,
      `up warm-up hooked sip:${ip}:${port}`,
      `stopped draining hooked sip:${ip}:${port}`,
    ]);
    await rm(dir, { recursive: true, force: true });
  });

  test('agent - started while the registry is away: it warms up, then announces once etcd is back', async (t) => {
    const r = await rig();
    const ip = loopbackHost();
    const port = await freeUdpPort(ip);
    const member = etcd.members[0]!.name;
    await etcd.kill(member, 'SIGKILL');
    let etcdDown = true;
    let a: Awaited<ReturnType<typeof runAgent>> | undefined;
    try {
      a = await runAgent(
        agentConfig(r.prefix, {
          nodeId: 'late',
          sipUri: `sip:${ip}:${port}`,
          command: sippCommand(ip, port),
        }),
        { logger },
      );
      await sleep(2500); // sipp answers OPTIONS within a second: ready, but nothing to announce into
      assert.equal(a.agent.status().phase, 'warm-up', 'not announced while the registry is away');
      await etcd.restart(member);
      etcdDown = false;
      const t0 = performance.now();
      await waitFor(async () => (await nodeState(r.registry, 'late').catch(() => undefined)) === 'ready', {
        timeoutMs: 20_000,
        what: 'announced after etcd came back',
      });
      t.diagnostic(`announced ${Math.round(performance.now() - t0)} ms after etcd restarted`);
      await waitFor(async () => (await flagsOf(kamailio.rpc)).late === 'A', {
        timeoutMs: 10_000,
        what: 'routed',
      });
    } finally {
      if (etcdDown) await etcd.restart(member);
      await a?.stop();
      await r.close();
    }
  });

  test('agent - boot: templates rendered, first boot run once as first-boot, a failed upgrade keeps the node out', async () => {
    const r = await rig();
    const dir = await mkdtemp(join(tmpdir(), 'sy-boot-'));
    const ip = loopbackHost();
    const port = await freeUdpPort(ip);
    const log = join(dir, 'boot.log');
    writeFileSync(join(dir, 'rtp.conf.tmpl'), '[general]\nrtpstart={{rtpStart}}\nrtpend={{rtpEnd}}\n');
    const record = ['sh', '-c', 'echo "$SWITCHYARD_PHASE $SWITCHYARD_NODE_ID" >> "$0"', log];
    const config = (version: string) =>
      agentConfig(r.prefix, {
        version,
        nodeId: 'booted',
        sipUri: `sip:${ip}:${port}`,
        command: sippCommand(ip, port),
        paths: { data: join(dir, 'data') },
        rtp: { start: 12_000, end: 12_100 },
        templates: [{ source: join(dir, 'rtp.conf.tmpl'), target: join(dir, 'etc', 'rtp.conf') }],
        firstBoot: { command: record },
        upgrade: {
          command: ['sh', '-c', 'echo "$SWITCHYARD_PHASE $SWITCHYARD_NODE_ID" >> "$0"; exit 1', log],
        },
      });
    try {
      // First start: templates, then first boot, then the service; announced.
      let a = await runAgent(config('1.0'), { logger });
      try {
        await waitFor(async () => (await nodeState(r.registry, 'booted')) === 'ready', { what: 'ready' });
        assert.equal(
          await readFile(join(dir, 'etc', 'rtp.conf'), 'utf8'),
          '[general]\nrtpstart=12000\nrtpend=12100\n',
        );
      } finally {
        await a.stop();
      }
      // Same version again: no first boot, no upgrade.
      a = await runAgent(config('1.0'), { logger });
      try {
        await waitFor(async () => (await nodeState(r.registry, 'booted')) === 'ready', {
          what: 'ready again',
        });
      } finally {
        await a.stop();
      }
      // New version whose upgrade fails: failed, never announced, the reason says why.
      a = await runAgent(config('2.0'), { logger });
      try {
        await waitFor(() => a.agent.status().phase === 'failed', { what: 'failed' });
        assert.match(a.agent.status().reason ?? '', /upgrade failed/);
        await sleep(500);
        assert.equal(await nodeState(r.registry, 'booted'), undefined);
      } finally {
        await a.stop();
      }
      assert.deepEqual((await readFile(log, 'utf8')).trim().split('\n'), [
        'first-boot booted',
        'upgrade booted',
      ]);
    } finally {
      await r.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('agent - a registry outage longer than the lease: the node comes back by itself', async (t) => {
    const r = await rig();
    const ip = loopbackHost();
    const port = await freeUdpPort(ip);
    const a = await runAgent(
      agentConfig(r.prefix, { nodeId: 'blip', sipUri: `sip:${ip}:${port}`, command: sippCommand(ip, port) }),
      { logger },
    );
    try {
      await waitFor(async () => (await flagsOf(kamailio.rpc)).blip === 'A', { what: 'routed' });
      const member = etcd.members[0]!.name;
      await etcd.kill(member, 'SIGKILL');
      await sleep(4000); // the 2 s lease expires meanwhile
      assert.equal(a.agent.status().phase, 'up', 'the agent keeps serving');
      await etcd.restart(member);
      const t0 = performance.now();
      await waitFor(async () => (await nodeState(r.registry, 'blip').catch(() => undefined)) === 'ready', {
        timeoutMs: 15_000,
        what: 're-announced',
      });
      t.diagnostic(`record back ${Math.round(performance.now() - t0)} ms after etcd restarted`);
      await waitFor(async () => (await flagsOf(kamailio.rpc)).blip === 'A', {
        timeoutMs: 10_000,
        what: 'routed again',
      });
    } finally {
      await a.stop();
      await r.close();
    }
  });

  test('agent - SIGTERM to `switchyard agent` drains, stops the service and exits 0', async () => {
    const r = await rig();
    const ip = loopbackHost();
    const cli = spawnAgentCli(r.prefix, 'cli1', ip, await freeUdpPort(ip));
    try {
      await waitFor(async () => (await nodeState(r.registry, 'cli1')) === 'ready', {
        timeoutMs: 15_000,
        what: `announced (output: ${cli.output().slice(-500)})`,
      });
      await waitFor(async () => (await flagsOf(kamailio.rpc)).cli1 === 'A', { what: 'routed' });
      cli.child.kill('SIGTERM');
      assert.equal(await cli.exited, 0, cli.output().slice(-2000));
      assert.match(cli.output(), /"phase":"draining"/);
      assert.match(cli.output(), /"phase":"stopped"/);
      assert.equal(await nodeState(r.registry, 'cli1'), undefined);
    } finally {
      if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
      await r.close();
    }
  });

  test('agent - a SIGKILLed agent takes its service with it: no orphan holds the port against the next agent', async (t) => {
    const r = await rig();
    const ip = loopbackHost();
    const port = await freeUdpPort(ip);
    // As root (CI), the service runs as nobody (runAs): the parent-death signal must survive that.
    const root = process.getuid?.() === 0;
    const runAs: Record<string, string> = root
      ? { SWITCHYARD_RUN_AS__USER: 'nobody', SWITCHYARD_RUN_AS__GROUP: 'nogroup' }
      : {};
    const first = spawnAgentCli(r.prefix, 'orphan1', ip, port, runAs);
    let second: AgentCli | undefined;
    let servicePid: number | undefined;
    try {
      await waitFor(async () => (await nodeState(r.registry, 'orphan1')) === 'ready', {
        timeoutMs: 15_000,
        what: `announced (output: ${first.output().slice(-500)})`,
      });
      servicePid = Number(/"pid":(\d+),"restarts":0,"msg":"process started"/.exec(first.output())?.[1]);
      assert.ok(
        servicePid > 0 && isAlive(servicePid),
        `the service's pid in the log: ${first.output().slice(-800)}`,
      );
      if (root)
        assert.match(
          readFileSync(`/proc/${servicePid}/status`, 'utf8'),
          /^Uid:\s+65534\s/m,
          'runs as nobody',
        );
      first.child.kill('SIGKILL');
      await first.exited;
      const t0 = performance.now();
      const pid = servicePid;
      await waitFor(async () => !isAlive(pid), { timeoutMs: 5000, what: 'the orphaned service to be gone' });
      t.diagnostic(`service gone ${Math.round(performance.now() - t0)} ms after the agent was SIGKILLed`);
      // A new agent for the same node starts its own service on the same port and serves again.
      second = spawnAgentCli(r.prefix, 'orphan1', ip, port);
      const s = second;
      await waitFor(async () => /"phase":"up"/.test(s.output()), {
        timeoutMs: 15_000,
        what: `the second agent up (output: ${s.output().slice(-800)})`,
      });
      await waitFor(async () => (await flagsOf(kamailio.rpc)).orphan1 === 'A', { what: 'routed again' });
    } finally {
      for (const c of [first, second])
        if (c !== undefined && c.child.exitCode === null) c.child.kill('SIGTERM');
      if (second !== undefined) await second.exited;
      if (servicePid !== undefined && isAlive(servicePid)) process.kill(servicePid, 'SIGKILL');
      await r.close();
    }
  });
});

interface AgentCli {
  child: ReturnType<typeof spawn>;
  output(): string;
  exited: Promise<number | null>;
}

/** `switchyard agent` as its own process, supervising a sipp UAS on ip:port, with a 500 ms drain. */
function spawnAgentCli(
  prefix: string,
  nodeId: string,
  ip: string,
  port: number,
  env: Record<string, string> = {},
): AgentCli {
  const child = spawn(
    process.execPath,
    [
      MAIN,
      'agent',
      '--registry',
      etcd.spec,
      '--prefix',
      prefix,
      '--node-id',
      nodeId,
      '--sip-uri',
      `sip:${ip}:${port}`,
      '--admin-port',
      '0',
      '--',
      ...sippCommand(ip, port),
    ],
    {
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', SWITCHYARD_DRAIN__DEADLINE_MS: '500', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  return { child, output: () => output, exited };
}

/** Running, not a zombie left for an init that may never reap it. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

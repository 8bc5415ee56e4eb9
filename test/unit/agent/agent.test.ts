import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AgentOptions,
  type CallSource,
  createAgent,
  type ServiceControl,
} from '../../../src/agent/agent.ts';
import type { SupervisorEvents } from '../../../src/agent/supervisor.ts';
import { createSilentLogger } from '../../../src/core/logger.ts';
import { createMetricsRegistry } from '../../../src/core/metrics.ts';
import type { AnnounceInput, Registry } from '../../../src/registry/index.ts';
import { emptyView, type RegistryView } from '../../../src/registry/view.ts';
import { sleep, waitFor } from '../../harness/wait.ts';
import { captureLogger } from './helpers.ts';

/** The life-cycle decisions against fakes: registry, supervised process and prober. */

const options: AgentOptions = {
  nodeId: 'n1',
  sipUri: 'sip:127.0.0.1:5099',
  setId: 1,
  priority: 0,
  version: '',
  leaseTtlMs: 3000,
  health: {
    optionsIntervalMs: 10,
    optionsTimeoutMs: 5,
    failuresToDown: 2,
    successesToUp: 2,
    amiDownGraceMs: 3000,
  },
  readiness: { timeoutMs: 5000 },
  restart: { unhealthyRestartAfterMs: 60_000 },
  drain: { deadlineMs: 50, progressIntervalMs: 10 },
  stop: { graceMs: 100 },
};

function fakeRegistry() {
  const states: string[] = [];
  /** When each entry of `states` was written (Date.now()). */
  const stateAt: number[] = [];
  /** The announced record, then every patch written to it. */
  const writes: Partial<AnnounceInput>[] = [];
  let onChange: ((v: RegistryView) => void) | undefined;
  let view = emptyView();
  const registry: Pick<Registry, 'announce' | 'watchView'> = {
    async announce(input: AnnounceInput) {
      states.push(input.state);
      stateAt.push(Date.now());
      writes.push(input);
      return {
        id: input.id,
        key: `/k/${input.id}`,
        current: () => ({ ...input }) as never,
        async update(patch: Partial<AnnounceInput>) {
          writes.push(patch);
          if (patch.state !== undefined && patch.state !== states.at(-1)) {
            states.push(patch.state);
            stateAt.push(Date.now());
          }
        },
        async withdraw() {
          states.push('withdrawn');
        },
        release() {},
      };
    },
    async watchView(fn) {
      onChange = fn;
      return { close: async () => {}, current: () => view };
    },
  };
  return {
    registry,
    states,
    stateAt,
    writes,
    setDrain(drain: boolean) {
      const intents = new Map(view.intents);
      intents.set('n1', { drain, disable: false, by: 'test', updatedAt: new Date().toISOString() });
      view = { ...view, intents };
      onChange?.(view);
    },
  };
}

/**
 * The supervised process, in the supervisor's event order: `exited`, `restart-scheduled`, then
 * `started` once the test (or, with `autoRestart`, the fake's back-off) says it is back.
 */
function fakeService(opts: { autoRestart?: boolean } = {}) {
  const listeners = new Map<string, Array<(p: never) => void>>();
  const emit = <E extends keyof SupervisorEvents>(e: E, p: SupervisorEvents[E]) => {
    for (const fn of listeners.get(e) ?? []) fn(p as never);
  };
  /** A restart() asked for and not yet carried out: a second one is refused, as by the supervisor. */
  let restartPending = false;
  const svc = {
    state: 'idle' as ServiceControl['state'],
    pid: undefined as number | undefined,
    restarts: 0,
    /** Every restart() the agent asked for: reason and when. */
    restartRequests: [] as { reason: string; at: number }[],
    async start() {
      svc.state = 'running';
      svc.pid = 1000;
      emit('started', { pid: 1000, restarts: 0 });
    },
    async stop() {
      svc.state = 'stopped';
      return undefined;
    },
    restart(reason: string) {
      if (restartPending || svc.state !== 'running') return false;
      restartPending = true;
      svc.restartRequests.push({ reason, at: Date.now() });
      // SIGTERM, then the exit arrives later, as from a real process.
      setImmediate(() => {
        restartPending = false;
        svc.state = 'backoff';
        emit('exited', { code: null, signal: 'SIGTERM', uptimeMs: 5000, expected: true });
        emit('restart-scheduled', { delayMs: 20, attempt: 1, reason });
        if (opts.autoRestart) setTimeout(() => svc.back(), 20);
      });
      return true;
    },
    on(event: string, fn: (p: never) => void) {
      listeners.set(event, [...(listeners.get(event) ?? []), fn]);
      return () => {};
    },
    crash() {
      svc.state = 'backoff';
      emit('exited', { code: 1, signal: null, uptimeMs: 5000, expected: false });
      emit('restart-scheduled', { delayMs: 20, attempt: 1, reason: 'exited with code 1' });
    },
    back() {
      svc.state = 'running';
      svc.restarts++;
      emit('started', { pid: 1001, restarts: svc.restarts });
    },
  };
  return svc;
}

test('agent - an operator drain survives a restart of the service: drained again once back', async (t) => {
  const reg = fakeRegistry();
  const svc = fakeService();
  const agent = createAgent({
    options,
    registry: reg.registry,
    probe: async () => ({ up: true, rttMs: 1 }),
    service: svc as unknown as ServiceControl,
    logger: createSilentLogger(),
    metrics: createMetricsRegistry(),
  });
  await agent.start();
  // A failed assertion must not leave the agent's timers running (the runner would hang).
  t.after(() => agent.shutdown());
  await waitFor(() => agent.status().phase === 'up', { what: 'up' });
  assert.deepEqual(reg.states, ['ready'], 'announced once, already ready');
  reg.setDrain(true);
  await waitFor(() => agent.status().phase === 'drained', { what: 'drained' });
  svc.crash();
  assert.equal(agent.status().phase, 'restarting');
  svc.back();
  await waitFor(() => agent.status().phase === 'drained', { what: 'drained again after the restart' });
  assert.deepEqual(reg.states, [
    'ready',
    'draining',
    'drained',
    'down',
    'starting',
    'ready',
    'draining',
    'drained',
  ]);
  reg.setDrain(false);
  await waitFor(() => agent.status().phase === 'up', { what: 'undrained' });
  await agent.shutdown();
  assert.equal(agent.status().phase, 'stopped');
  assert.equal(reg.states.at(-1), 'withdrawn');
});

test('agent - never announces before ready: a node that never answers OPTIONS stays unlisted', async (t) => {
  const reg = fakeRegistry();
  const agent = createAgent({
    options,
    registry: reg.registry,
    probe: async () => ({ up: false, reason: 'timeout' }),
    logger: createSilentLogger(),
    metrics: createMetricsRegistry(),
  });
  await agent.start();
  t.after(() => agent.shutdown());
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(agent.status().phase, 'warm-up');
  assert.deepEqual(reg.states, []);
  assert.equal(agent.ready().ok, false);
  await agent.shutdown();
  assert.deepEqual(reg.states, [], 'nothing to withdraw');
});

/** A call source (as src/capture/live-calls.ts makes one) the test sets by hand. */
function fakeCallSource(initial: { calls: number; channels: number } | undefined) {
  let count = initial;
  const listeners: Array<() => void> = [];
  const source: CallSource & { set(next: { calls: number; channels: number } | undefined): void } = {
    kind: 'capture',
    calls: () => count,
    onChange(fn) {
      listeners.push(fn);
    },
    set(next) {
      count = next;
      for (const fn of listeners) fn();
    },
  };
  return source;
}

test('agent - drain without AMI waits until the call source says 0, then stops', async (t) => {
  const reg = fakeRegistry();
  const source = fakeCallSource({ calls: 1, channels: 2 });
  const { logger, lines } = captureLogger();
  const agent = createAgent({
    options: { ...options, drain: { deadlineMs: 10_000, progressIntervalMs: 10 } },
    registry: reg.registry,
    probe: async () => ({ up: true, rttMs: 1 }),
    calls: source,
    logger,
    metrics: createMetricsRegistry(),
  });
  await agent.start();
  t.after(() => {
    source.set({ calls: 0, channels: 0 });
    return agent.shutdown();
  });
  await waitFor(() => agent.status().phase === 'up', { what: 'up' });
  const t0 = Date.now();
  const done = agent.shutdown();
  await waitFor(() => agent.status().phase === 'draining', { what: 'draining' });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(agent.status().phase, 'draining', 'still waiting for the calls');
  const progress = lines.filter((l) => l.msg === 'draining: waiting for calls to end');
  assert.ok(progress.length >= 2, 'progress logged while waiting');
  assert.equal(progress[0]?.source, 'capture');
  assert.equal(progress[0]?.channels, 2);
  source.set({ calls: 1, channels: 1 });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(agent.status().phase, 'draining', 'one channel left');
  source.set({ calls: 0, channels: 0 });
  await done;
  assert.equal(agent.status().phase, 'stopped');
  assert.ok(Date.now() - t0 < 5000, 'did not wait out the deadline');
  assert.deepEqual(reg.states, ['ready', 'draining', 'down', 'withdrawn']);
  assert.equal(
    lines.some((l) => l.msg === 'drain deadline reached with calls up'),
    false,
  );
});

test('agent - the record, status and metrics carry the call source count', async (t) => {
  const reg = fakeRegistry();
  const source = fakeCallSource({ calls: 3, channels: 4 });
  const metrics = createMetricsRegistry();
  const agent = createAgent({
    options,
    registry: reg.registry,
    probe: async () => ({ up: true, rttMs: 1 }),
    calls: source,
    logger: createSilentLogger(),
    metrics,
  });
  await agent.start();
  t.after(() => {
    source.set({ calls: 0, channels: 0 });
    return agent.shutdown();
  });
  await waitFor(() => agent.status().phase === 'up', { what: 'up' });
  const announced = reg.writes[0];
  assert.equal(announced?.calls, 3);
  assert.equal(announced?.stats?.callsSource, 'capture');
  assert.equal(announced?.stats?.channels, 4);
  assert.equal(announced?.stats?.ami, undefined, 'no AMI configured');
  assert.equal(agent.status().calls, 3);

  source.set({ calls: 5, channels: 6 });
  // Call counts are coalesced into one record write a second.
  await waitFor(() => reg.writes.some((w) => w.calls === 5), {
    what: 'the new count written',
    timeoutMs: 3000,
  });
  const patch = reg.writes.find((w) => w.calls === 5);
  assert.equal(patch?.stats?.channels, 6);
  assert.equal(agent.status().calls, 5);
  const gauge = await metrics.getSingleMetric('switchyard_agent_calls')?.get();
  assert.equal(gauge?.values[0]?.value, 5);
});

test('agent - a call source not counted yet: record says 0, drain waits to the deadline', async (t) => {
  const reg = fakeRegistry();
  const source = fakeCallSource(undefined);
  const { logger, lines } = captureLogger();
  const agent = createAgent({
    options: { ...options, drain: { deadlineMs: 150, progressIntervalMs: 10 } },
    registry: reg.registry,
    probe: async () => ({ up: true, rttMs: 1 }),
    calls: source,
    logger,
    metrics: createMetricsRegistry(),
  });
  await agent.start();
  t.after(() => agent.shutdown());
  await waitFor(() => agent.status().phase === 'up', { what: 'up' });
  assert.equal(reg.writes[0]?.calls, 0);
  assert.equal(reg.writes[0]?.stats?.channels, undefined);
  assert.equal(reg.writes[0]?.stats?.callsSource, 'capture');
  assert.equal(agent.status().calls, undefined);
  const t0 = Date.now();
  await agent.shutdown();
  assert.ok(Date.now() - t0 >= 140, 'waited out the deadline');
  const progress = lines.filter((l) => l.msg === 'draining: waiting for calls to end');
  assert.ok(progress.length >= 1);
  assert.equal(progress[0]?.channels, null);
  // Nothing known, so no claim that calls were cut.
  assert.equal(
    lines.some((l) => l.msg === 'drain deadline reached with calls up'),
    false,
  );
});

// ---- health, hysteresis, self-heal ----------------------------------------------------------

/**
 * SIP OPTIONS answers the test scripts: `script` is consumed one answer per probe, then
 * `fallback` answers. Each probe logs what the node looked like when it was sent, i.e. after
 * the agent had decided on the previous answer.
 */
function fakeProbe(look: () => { state: string | undefined; phase: string | undefined }) {
  const calls: { up: boolean; scripted: boolean; state: string | undefined; phase: string | undefined }[] =
    [];
  const p = {
    script: [] as boolean[],
    fallback: true,
    calls,
    async probe() {
      const scripted = p.script.length > 0;
      const up = p.script.shift() ?? p.fallback;
      calls.push({ up, scripted, ...look() });
      return up ? { up: true, rttMs: 4 } : { up: false, reason: 'timeout' };
    },
  };
  return p;
}

/** Asterisk's manager interface as the agent sees it; drop() is what a TCP reset looks like. */
function fakeAmi(initial: { connected: boolean; booted: boolean }) {
  let { connected, booted } = initial;
  const listeners: Array<() => void> = [];
  const notify = () => {
    for (const fn of listeners) fn();
  };
  return {
    connected: () => connected,
    fullyBooted: () => connected && booted,
    calls: () => ({ calls: 0, channels: 0 }),
    onChange(fn: () => void) {
      listeners.push(fn);
    },
    async stopNow() {},
    /** The session is gone; the AMI client forgets FullyBooted with it. */
    drop() {
      connected = false;
      booted = false;
      notify();
    },
    /** Logged in again, then Asterisk sends FullyBooted on the new session. */
    reconnect() {
      connected = true;
      notify();
      booted = true;
      notify();
    },
    /** A Shutdown event on the live session. */
    shuttingDown() {
      booted = false;
      notify();
    },
    boot() {
      booted = true;
      notify();
    },
  };
}

/** The samples of one metric; a histogram's carry their series name (`_count`, `_sum`...). */
async function metricValues(
  metrics: ReturnType<typeof createMetricsRegistry>,
  name: string,
): Promise<{ value: number; labels: Partial<Record<string, string | number>>; metricName?: string }[]> {
  const got = await metrics.getSingleMetric(name)?.get();
  assert.ok(got, `metric ${name} exists`);
  return got.values;
}

test('agent - hysteresis while up: lost probes below failuresToDown change nothing; recovery needs successesToUp', async (t) => {
  const reg = fakeRegistry();
  const metrics = createMetricsRegistry();
  let agent: ReturnType<typeof createAgent> | undefined;
  const p = fakeProbe(() => ({ state: reg.states.at(-1), phase: agent?.status().phase }));
  agent = createAgent({
    options: {
      ...options,
      health: { ...options.health, failuresToDown: 3, successesToUp: 2 },
      // Watch-only: nothing to restart, so only the hysteresis decides.
    },
    registry: reg.registry,
    probe: p.probe,
    logger: createSilentLogger(),
    metrics,
  });
  await agent.start();
  t.after(() => agent.shutdown());
  await waitFor(() => agent.status().phase === 'up', { what: 'up' });
  // Two lost, one answered (the streak starts over), three lost, then back: one answer, one
  // lost (starts over again), two answers.
  const script = [false, false, true, false, false, false, true, false, true, true];
  p.script.push(...script);
  await waitFor(() => p.calls.filter((c) => c.scripted).length === script.length && p.script.length === 0, {
    what: 'the scripted probes',
  });
  await waitFor(() => p.calls.length > p.calls.findLastIndex((c) => c.scripted) + 1, {
    what: 'a probe after the last scripted one',
  });
  const first = p.calls.findIndex((c) => c.scripted);
  // What the probe after each scripted answer saw: the record once the agent had decided.
  const seen = p.calls.slice(first + 1, first + 1 + script.length).map((c) => c.state);
  assert.deepEqual(seen, [
    'ready', // 1 lost
    'ready', // 2 lost: still below failuresToDown
    'ready', // answered: the streak is broken
    'ready', // 1 lost
    'ready', // 2 lost
    'down', // 3 lost: out of rotation on this very probe
    'down', // 1 answered: not enough to come back
    'down', // lost again: the good streak starts over
    'down', // 1 answered
    'ready', // 2 answered: back in rotation
  ]);
  assert.ok(
    p.calls.slice(first).every((c) => c.phase === 'up'),
    'the phase stays up: out of rotation is the record, not a restart',
  );
  assert.deepEqual(reg.states, ['ready', 'down', 'ready']);
  assert.equal(agent.ready().ok, true);
  assert.equal(agent.status().reason, undefined, 'the unhealthy reason is cleared on recovery');
  assert.deepEqual(
    (await metricValues(metrics, 'switchyard_agent_unhealthy_total')).map((v) => v.value),
    [1],
  );
  assert.equal((await metricValues(metrics, 'switchyard_agent_healthy'))[0]?.value, 1);
});

test('agent - unhealthy for unhealthyRestartAfterMs: out of rotation at once, restarted, re-announced when ready', async (t) => {
  const reg = fakeRegistry();
  const svc = fakeService({ autoRestart: true });
  const metrics = createMetricsRegistry();
  const phases: { phase: string; reason: string | undefined }[] = [];
  let agent: ReturnType<typeof createAgent> | undefined;
  const p = fakeProbe(() => ({ state: reg.states.at(-1), phase: agent?.status().phase }));
  agent = createAgent({
    options: { ...options, restart: { unhealthyRestartAfterMs: 200 } },
    registry: reg.registry,
    probe: p.probe,
    service: svc as unknown as ServiceControl,
    onPhase: (phase) => phases.push({ phase, reason: agent?.status().reason }),
    logger: createSilentLogger(),
    metrics,
  });
  await agent.start();
  t.after(() => agent.shutdown());
  await waitFor(() => agent.status().phase === 'up', { what: 'up' });
  p.fallback = false;
  await waitFor(() => svc.restartRequests.length === 1, { what: 'the restart' });
  const downAt = reg.stateAt[reg.states.indexOf('down')];
  assert.ok(downAt !== undefined, 'the record went down before the restart');
  const restart = svc.restartRequests[0];
  assert.ok(restart !== undefined);
  assert.ok(
    restart.at - downAt >= 200,
    `restarted ${restart.at - downAt} ms after going down, not before unhealthyRestartAfterMs`,
  );
  assert.match(restart.reason, /^unhealthy: SIP OPTIONS not answered with 2xx \(timeout\)$/);
  p.fallback = true; // the restarted process answers again
  await waitFor(() => phases.filter((x) => x.phase === 'up').length === 2, { what: 're-announced' });
  assert.deepEqual(
    phases.map((x) => x.phase),
    ['boot', 'warm-up', 'up', 'restarting', 'warm-up', 'up'],
  );
  assert.match(phases[3]?.reason ?? '', /^restarted: unhealthy: SIP OPTIONS not answered/);
  assert.deepEqual(reg.states, ['ready', 'down', 'starting', 'ready']);
  assert.equal(svc.restartRequests.length, 1, 'one restart, not one per failed probe');
  assert.equal(agent.status().restarts, 1);
  assert.equal(agent.ready().ok, true);
  assert.equal((await metricValues(metrics, 'switchyard_agent_restarts_total'))[0]?.value, 1);
  assert.equal(
    (await metricValues(metrics, 'switchyard_agent_service_exits_total'))[0]?.value ?? 0,
    0,
    'an exit the agent asked for is not counted as a crash',
  );
});

test('agent - an AMI blip shorter than amiDownGraceMs keeps the node in rotation', async (t) => {
  const reg = fakeRegistry();
  const ami = fakeAmi({ connected: true, booted: true });
  const agent = createAgent({
    options: { ...options, health: { ...options.health, amiDownGraceMs: 500 } },
    registry: reg.registry,
    probe: async () => ({ up: true, rttMs: 1 }),
    ami,
    logger: createSilentLogger(),
    metrics: createMetricsRegistry(),
  });
  await agent.start();
  t.after(() => agent.shutdown());
  await waitFor(() => agent.status().phase === 'up', { what: 'up' });
  ami.drop();
  assert.equal(agent.ready().ok, true, 'not out of rotation on the drop itself');
  await sleep(50);
  ami.reconnect();
  await sleep(700); // past the end the grace would have had
  assert.deepEqual(reg.states, ['ready'], 'never written down');
  assert.equal(agent.ready().ok, true);
  assert.equal(agent.status().reason, undefined);
});

test('agent - AMI lost longer than amiDownGraceMs: down when the grace ends (timer, no probe needed), back on reconnect', async (t) => {
  const reg = fakeRegistry();
  const ami = fakeAmi({ connected: true, booted: true });
  const metrics = createMetricsRegistry();
  const agent = createAgent({
    options: {
      ...options,
      // One probe makes the node ready; the next is a minute away, so only the grace timer
      // can notice that AMI stayed away.
      health: { ...options.health, optionsIntervalMs: 60_000, successesToUp: 1, amiDownGraceMs: 300 },
    },
    registry: reg.registry,
    probe: async () => ({ up: true, rttMs: 1 }),
    ami,
    logger: createSilentLogger(),
    metrics,
  });
  await agent.start();
  t.after(() => agent.shutdown());
  await waitFor(() => agent.status().phase === 'up', { what: 'up' });
  const lostAt = Date.now();
  ami.drop();
  await sleep(150);
  assert.deepEqual(reg.states, ['ready'], 'still in rotation within the grace');
  await waitFor(() => reg.states.at(-1) === 'down', { what: 'down after the grace', timeoutMs: 3000 });
  assert.ok(Date.now() - lostAt >= 300, 'not before the grace ended');
  assert.equal(agent.status().phase, 'up');
  assert.match(agent.status().reason ?? '', /^unhealthy: AMI disconnected for \d+ ms$/);
  assert.equal(agent.ready().ok, false);
  assert.equal((await metricValues(metrics, 'switchyard_agent_healthy'))[0]?.value, 0);
  ami.reconnect();
  assert.deepEqual(reg.states, ['ready', 'down', 'ready'], 'back at once once booted again');
  assert.equal(agent.ready().ok, true);
  assert.equal((await metricValues(metrics, 'switchyard_agent_healthy'))[0]?.value, 1);
});

test('agent - a Shutdown on the live AMI session takes the node out at once, grace or not', async (t) => {
  const reg = fakeRegistry();
  const ami = fakeAmi({ connected: true, booted: true });
  const agent = createAgent({
    options: { ...options, health: { ...options.health, amiDownGraceMs: 60_000 } },
    registry: reg.registry,
    probe: async () => ({ up: true, rttMs: 1 }),
    ami,
    logger: createSilentLogger(),
    metrics: createMetricsRegistry(),
  });
  await agent.start();
  t.after(() => agent.shutdown());
  await waitFor(() => agent.status().phase === 'up', { what: 'up' });
  ami.shuttingDown();
  assert.deepEqual(reg.states, ['ready', 'down']);
  assert.match(agent.status().reason ?? '', /shutting down/);
  // Asterisk then closes the session: no grace starts, the node stays out while OPTIONS still pass.
  ami.drop();
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(reg.states, ['ready', 'down'], 'not back in rotation after the shutdown');
  // Booted again on a new session: back.
  ami.reconnect();
  await waitFor(() => reg.states.at(-1) === 'ready', { what: 'back after booting again' });
});

test('agent - AMI never says FullyBooted: restarted after readiness.timeoutMs with the reason, never announced', async (t) => {
  const reg = fakeRegistry();
  const svc = fakeService();
  const ami = fakeAmi({ connected: true, booted: false });
  const metrics = createMetricsRegistry();
  const agent = createAgent({
    // A long AMI grace must not make warm-up any less strict.
    options: {
      ...options,
      health: { ...options.health, amiDownGraceMs: 60_000 },
      readiness: { timeoutMs: 150 },
    },
    registry: reg.registry,
    probe: async () => ({ up: true, rttMs: 1 }),
    service: svc as unknown as ServiceControl,
    ami,
    logger: createSilentLogger(),
    metrics,
  });
  const t0 = Date.now();
  await agent.start();
  t.after(() => agent.shutdown());
  await waitFor(() => agent.status().phase === 'restarting', { what: 'restarting' });
  const restart = svc.restartRequests[0];
  assert.ok(restart !== undefined);
  assert.ok(restart.at - t0 >= 150, 'not before readiness.timeoutMs');
  assert.equal(restart.reason, 'not ready after 150 ms: AMI has not sent FullyBooted');
  assert.equal(agent.status().reason, `restarted: ${restart.reason}`);
  assert.equal(agent.health().checks.reason, `restarted: ${restart.reason}`);
  assert.equal(agent.health().ok, true, 'the agent keeps its footing');
  assert.deepEqual(reg.states, [], 'never announced');
  assert.equal((await metricValues(metrics, 'switchyard_agent_restarts_total'))[0]?.value, 1);
  // The restarted Asterisk boots: now it is announced.
  svc.back();
  ami.boot();
  await waitFor(() => agent.status().phase === 'up', { what: 'up after the restart' });
  assert.deepEqual(reg.states, ['ready']);
});

test('agent - watching only, AMI never says FullyBooted: keeps waiting with the reason, announces once booted', async (t) => {
  const reg = fakeRegistry();
  const ami = fakeAmi({ connected: true, booted: false });
  const agent = createAgent({
    options: { ...options, readiness: { timeoutMs: 100 } },
    registry: reg.registry,
    probe: async () => ({ up: true, rttMs: 1 }),
    ami,
    logger: createSilentLogger(),
    metrics: createMetricsRegistry(),
  });
  await agent.start();
  t.after(() => agent.shutdown());
  assert.equal(agent.status().reason, undefined);
  await waitFor(() => agent.status().reason !== undefined, { what: 'the warm-up timeout' });
  assert.equal(agent.status().reason, 'not ready after 100 ms: AMI has not sent FullyBooted');
  assert.equal(agent.health().checks.reason, agent.status().reason);
  assert.equal(agent.status().phase, 'warm-up', 'nothing to restart: it keeps waiting');
  assert.equal(agent.health().ok, true);
  await sleep(100);
  assert.deepEqual(reg.states, [], 'never announced while not booted');
  ami.boot();
  await waitFor(() => agent.status().phase === 'up', { what: 'up once booted' });
  assert.deepEqual(reg.states, ['ready']);
  assert.equal(agent.status().reason, undefined);
});

test('agent - after a crash and restart: phase, transition, restart and probe metrics, and the record stats', async (t) => {
  const reg = fakeRegistry();
  const svc = fakeService();
  const source = fakeCallSource({ calls: 2, channels: 3 });
  const metrics = createMetricsRegistry();
  let clock = Date.parse('2025-01-01T00:00:00Z');
  const agent = createAgent({
    options,
    registry: reg.registry,
    probe: async () => ({ up: true, rttMs: 4 }),
    service: svc as unknown as ServiceControl,
    calls: source,
    logger: createSilentLogger(),
    metrics,
    now: () => clock,
  });
  await agent.start();
  t.after(() => {
    source.set({ calls: 0, channels: 0 });
    return agent.shutdown();
  });
  await waitFor(() => agent.status().phase === 'up', { what: 'up' });
  clock += 42_000;
  svc.crash();
  svc.back();
  await waitFor(() => agent.status().phase === 'up', { what: 'up again' });

  const reannounced = reg.writes.findLast((w) => w.state === 'ready');
  assert.ok(reannounced && reannounced !== reg.writes[0], 'written ready again after the restart');
  assert.equal(reannounced.calls, 2);
  assert.deepEqual(
    {
      phase: reannounced.stats?.phase,
      restarts: reannounced.stats?.restarts,
      uptimeS: reannounced.stats?.uptimeS,
      probeMs: reannounced.stats?.probeMs,
      channels: reannounced.stats?.channels,
      callsSource: reannounced.stats?.callsSource,
    },
    { phase: 'up', restarts: 1, uptimeS: 42, probeMs: 4, channels: 3, callsSource: 'capture' },
  );
  const down = reg.writes.find((w) => w.state === 'down');
  assert.equal(down?.stats?.phase, 'restarting');
  assert.match(String(down?.stats?.reason), /^process exit code 1 after 5 s$/);

  const phaseGauge = await metricValues(metrics, 'switchyard_agent_phase');
  assert.deepEqual(
    phaseGauge.filter((v) => v.value === 1).map((v) => v.labels.phase),
    ['up'],
    'only the current phase is 1',
  );
  const transitions = Object.fromEntries(
    (await metricValues(metrics, 'switchyard_agent_transitions_total')).map((v) => [
      `${v.labels.from}->${v.labels.to}`,
      v.value,
    ]),
  );
  assert.deepEqual(transitions, {
    'boot->warm-up': 1,
    'warm-up->up': 2,
    'up->restarting': 1,
    'restarting->warm-up': 1,
  });
  assert.equal((await metricValues(metrics, 'switchyard_agent_restarts_total'))[0]?.value, 1);
  assert.equal((await metricValues(metrics, 'switchyard_agent_service_exits_total'))[0]?.value, 1);
  const histogram = await metricValues(metrics, 'switchyard_agent_probe_seconds');
  const count = histogram.find((v) => v.metricName === 'switchyard_agent_probe_seconds_count')?.value ?? 0;
  const sum = histogram.find((v) => v.metricName === 'switchyard_agent_probe_seconds_sum')?.value ?? 0;
  assert.ok(count >= 4, `two good probes per warm-up, got ${count}`);
  assert.ok(Math.abs(sum - count * 0.004) < 1e-9, 'observed the probe round trip, in seconds');
  const probesUp = (await metricValues(metrics, 'switchyard_agent_probes_total')).find(
    (v) => v.labels.result === 'up',
  );
  assert.equal(probesUp?.value, count, 'every answered probe is observed once');
  assert.equal(agent.status().lastProbeMs, 4);
});

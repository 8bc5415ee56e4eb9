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
import { waitFor } from '../../harness/wait.ts';
import { captureLogger } from './helpers.ts';

/** The life-cycle decisions against fakes: registry, supervised process and prober. */

const options: AgentOptions = {
  nodeId: 'n1',
  sipUri: 'sip:127.0.0.1:5099',
  setId: 1,
  priority: 0,
  version: '',
  leaseTtlMs: 3000,
  health: { optionsIntervalMs: 10, optionsTimeoutMs: 5, failuresToDown: 2, successesToUp: 2 },
  readiness: { timeoutMs: 5000 },
  restart: { unhealthyRestartAfterMs: 60_000 },
  drain: { deadlineMs: 50, progressIntervalMs: 10 },
  stop: { graceMs: 100 },
};

function fakeRegistry() {
  const states: string[] = [];
  /** The announced record, then every patch written to it. */
  const writes: Partial<AnnounceInput>[] = [];
  let onChange: ((v: RegistryView) => void) | undefined;
  let view = emptyView();
  const registry: Pick<Registry, 'announce' | 'watchView'> = {
    async announce(input: AnnounceInput) {
      states.push(input.state);
      writes.push(input);
      return {
        id: input.id,
        key: `/k/${input.id}`,
        current: () => ({ ...input }) as never,
        async update(patch: Partial<AnnounceInput>) {
          writes.push(patch);
          if (patch.state !== undefined && patch.state !== states.at(-1)) states.push(patch.state);
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
    writes,
    setDrain(drain: boolean) {
      const intents = new Map(view.intents);
      intents.set('n1', { drain, disable: false, by: 'test', updatedAt: new Date().toISOString() });
      view = { ...view, intents };
      onChange?.(view);
    },
  };
}

function fakeService() {
  const listeners = new Map<string, Array<(p: never) => void>>();
  const emit = <E extends keyof SupervisorEvents>(e: E, p: SupervisorEvents[E]) => {
    for (const fn of listeners.get(e) ?? []) fn(p as never);
  };
  const svc = {
    state: 'idle' as ServiceControl['state'],
    pid: undefined as number | undefined,
    restarts: 0,
    async start() {
      svc.state = 'running';
      svc.pid = 1000;
      emit('started', { pid: 1000, restarts: 0 });
    },
    async stop() {
      svc.state = 'stopped';
      return undefined;
    },
    restart: () => true,
    on(event: string, fn: (p: never) => void) {
      listeners.set(event, [...(listeners.get(event) ?? []), fn]);
      return () => {};
    },
    crash() {
      svc.state = 'backoff';
      emit('exited', { code: 1, signal: null, uptimeMs: 5000, expected: false });
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

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AgentOptions, createAgent, type ServiceControl } from '../../../src/agent/agent.ts';
import type { SupervisorEvents } from '../../../src/agent/supervisor.ts';
import { createSilentLogger } from '../../../src/core/logger.ts';
import { createMetricsRegistry } from '../../../src/core/metrics.ts';
import type { AnnounceInput, Registry } from '../../../src/registry/index.ts';
import { emptyView, type RegistryView } from '../../../src/registry/view.ts';
import { waitFor } from '../../harness/wait.ts';

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
  let onChange: ((v: RegistryView) => void) | undefined;
  let view = emptyView();
  const registry: Pick<Registry, 'announce' | 'watchView'> = {
    async announce(input: AnnounceInput) {
      states.push(input.state);
      return {
        id: input.id,
        key: `/k/${input.id}`,
        current: () => ({ ...input }) as never,
        async update(patch: Partial<AnnounceInput>) {
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

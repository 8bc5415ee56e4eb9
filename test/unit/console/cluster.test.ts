import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildClusterModel, createDrainTracker } from '../../../src/console/cluster.ts';
import { createEventLog } from '../../../src/console/event-log.ts';
import type { ClusterNode, DrainProgress, LogEvent } from '../../../src/console/model.ts';
import type { DispatcherStatus, Intent, NodeRecord, StaticNode } from '../../../src/registry/records.ts';
import type { RegistryView } from '../../../src/registry/view.ts';

const T = Date.parse('2026-12-01T10:00:00.000Z');
const iso = (offsetMs = 0) => new Date(T + offsetMs).toISOString();

function record(id: string, extra: Partial<NodeRecord> = {}): NodeRecord {
  return {
    id,
    setId: 1,
    uri: `sip:${id}.example:5080`,
    priority: 0,
    state: 'ready',
    calls: 0,
    version: 'Asterisk 20',
    startedAt: iso(-3_600_000),
    updatedAt: iso(-60_000),
    ...extra,
  };
}

function staticNode(id: string, extra: Partial<StaticNode> = {}): StaticNode {
  return {
    id,
    setId: 1,
    uri: `sip:${id}.example:5060`,
    priority: 0,
    addedAt: iso(-7_200_000),
    addedBy: 'operator',
    ...extra,
  };
}

function intent(extra: Partial<Intent> = {}): Intent {
  return { drain: false, disable: false, by: 'ops', updatedAt: iso(-30_000), ...extra };
}

function view(
  parts: {
    nodes?: NodeRecord[];
    statics?: StaticNode[];
    intents?: Record<string, Intent>;
    dispatchers?: DispatcherStatus[];
    rejected?: Record<string, string>;
  },
  revision = 7,
): RegistryView {
  return {
    revision,
    nodes: new Map((parts.nodes ?? []).map((n) => [n.id, n])),
    statics: new Map((parts.statics ?? []).map((n) => [n.id, n])),
    intents: new Map(Object.entries(parts.intents ?? {})),
    dispatchers: new Map((parts.dispatchers ?? []).map((d) => [d.name, d])),
    rejected: new Map(Object.entries(parts.rejected ?? {})),
  };
}

const noExtra = { drains: new Map<string, DrainProgress>(), services: [], generator: null, nowMs: T };

function nodeOf(v: RegistryView, id: string, extra = noExtra): ClusterNode {
  const n = buildClusterModel(v, extra).nodes.find((x) => x.id === id);
  assert.ok(n, `node ${id} in the model`);
  return n;
}

describe('console cluster - buildClusterModel', () => {
  test('cluster - effective state follows the node and the operator intent', () => {
    const v = view({
      nodes: [
        record('a-ready'),
        record('b-drained', { state: 'ready' }),
        record('c-disabled'),
        record('d-starting', { state: 'starting' }),
        record('e-down', { state: 'down' }),
        record('f-draining', { state: 'draining' }),
        record('g-both', { state: 'starting' }),
      ],
      intents: {
        'b-drained': intent({ drain: true }),
        'c-disabled': intent({ disable: true }),
        'g-both': intent({ drain: true, disable: true }),
      },
    });
    const m = buildClusterModel(v, noExtra);
    const effective = Object.fromEntries(m.nodes.map((n) => [n.id, n.effective]));
    assert.deepEqual(effective, {
      'a-ready': 'in-rotation',
      'b-drained': 'drained',
      'c-disabled': 'disabled',
      'd-starting': 'starting',
      'e-down': 'down',
      'f-draining': 'draining',
      'g-both': 'disabled',
    });
    assert.equal(nodeOf(v, 'e-down').healthy, false);
    assert.equal(nodeOf(v, 'a-ready').healthy, true);
    assert.equal(nodeOf(v, 'a-ready').state, 'ready');
  });

  test('cluster - a node sharing another node URI is excluded with the reason', () => {
    const v = view({
      nodes: [record('a1', { uri: 'sip:10.0.0.5:5080' }), record('a2', { uri: 'sip:10.0.0.5:5080' })],
    });
    const a2 = nodeOf(v, 'a2');
    assert.equal(a2.effective, 'excluded');
    assert.match(a2.excluded ?? '', /same URI sip:10\.0\.0\.5:5080 as node a1/);
    assert.equal('excluded' in nodeOf(v, 'a1'), false);
  });

  test('cluster - calls are unknown (null) when the agent has no call source', () => {
    const v = view({ nodes: [record('n1', { calls: 0, stats: { phase: 'up', restarts: 2 } })] });
    const n = nodeOf(v, 'n1');
    assert.equal(n.calls, null);
    assert.equal(n.callsSource, null);
    assert.equal(n.phase, 'up');
    assert.equal(n.restarts, 2);
  });

  test('cluster - calls are shown with their source when the agent counts them', () => {
    const v = view({
      nodes: [
        record('cap', { calls: 4, stats: { phase: 'up', callsSource: 'capture' } }),
        record('ami', { calls: 2, stats: { phase: 'up', callsSource: 'ami' } }),
        record('ami-implied', { calls: 0, stats: { phase: 'up', ami: 'connected' } }),
      ],
    });
    assert.deepEqual(
      [nodeOf(v, 'cap'), nodeOf(v, 'ami'), nodeOf(v, 'ami-implied')].map((n) => [n.calls, n.callsSource]),
      [
        [4, 'capture'],
        [2, 'ami'],
        [0, 'ami'],
      ],
    );
  });

  test('cluster - agent facts come from the stats, wrong types become null', () => {
    const v = view({
      nodes: [
        record('n1', {
          maxCalls: 50,
          stats: { phase: 'warm-up', restarts: 'many', probeMs: 3.5, reason: 'AMI login failed' },
        }),
      ],
    });
    const n = nodeOf(v, 'n1');
    assert.equal(n.phase, 'warm-up');
    assert.equal(n.restarts, null);
    assert.equal(n.probeMs, 3.5);
    assert.equal(n.reason, 'AMI login failed');
    assert.equal(n.maxCalls, 50);
    assert.equal(n.version, 'Asterisk 20');
    assert.equal(n.since, iso(-3_600_000));
    assert.equal(n.source, 'agent');
  });

  test('cluster - a static node has no health, calls or phase', () => {
    const v = view({ statics: [staticNode('pbx')] });
    const n = nodeOf(v, 'pbx');
    assert.equal(n.source, 'static');
    assert.equal(n.state, null);
    assert.equal(n.effective, 'in-rotation');
    assert.equal(n.healthy, null);
    assert.equal(n.calls, null);
    assert.equal(n.callsSource, null);
    assert.equal(n.phase, null);
    assert.equal(n.version, null);
    assert.equal(n.since, iso(-7_200_000));
    assert.equal(n.lastChange, null);
  });

  test('cluster - an operator weight overrides the node weight', () => {
    const v = view({
      nodes: [record('own', { weight: 20 }), record('over', { weight: 20 }), record('plain')],
      statics: [staticNode('pbx', { weight: 5 })],
      intents: { over: intent({ weight: 70 }), pbx: intent({ weight: 1 }) },
    });
    assert.deepEqual(
      ['own', 'over', 'plain', 'pbx'].map((id) => [nodeOf(v, id).weight, nodeOf(v, id).weightOverridden]),
      [
        [20, false],
        [70, true],
        [10, false],
        [1, true],
      ],
    );
  });

  test('cluster - lastChange is the later of the record update and the intent update', () => {
    const v = view({
      nodes: [
        record('record-newer', { updatedAt: iso(-1000) }),
        record('intent-newer', { updatedAt: iso(-60_000) }),
        record('no-intent', { updatedAt: iso(-5000) }),
      ],
      statics: [staticNode('pbx')],
      intents: {
        'record-newer': intent({ updatedAt: iso(-30_000) }),
        'intent-newer': intent({ updatedAt: iso(-2000) }),
        pbx: intent({ updatedAt: iso(-4000) }),
      },
    });
    assert.equal(nodeOf(v, 'record-newer').lastChange, iso(-1000));
    assert.equal(nodeOf(v, 'intent-newer').lastChange, iso(-2000));
    assert.equal(nodeOf(v, 'no-intent').lastChange, iso(-5000));
    assert.equal(nodeOf(v, 'pbx').lastChange, iso(-4000));
  });

  test('cluster - the model carries revision, time, drains, services, orphans and rejects', () => {
    const drain: DrainProgress = {
      nodeId: 'n1',
      startedAt: iso(),
      by: 'ops',
      startCalls: 3,
      calls: 1,
      state: 'waiting',
      finishedAt: null,
    };
    const v = view(
      {
        nodes: [record('n2', { setId: 2 }), record('n1')],
        intents: { ghost: intent({ drain: true }), n1: intent({ drain: true }) },
        rejected: { '/switchyard/nodes/bad': 'node record is not valid JSON' },
      },
      99,
    );
    const m = buildClusterModel(v, {
      drains: new Map([['n1', drain]]),
      services: [{ name: 'kamailio', state: 'running', detail: null }],
      generator: null,
      nowMs: T + 5000,
    });
    assert.equal(m.revision, 99);
    assert.equal(m.generatedAt, iso(5000));
    assert.deepEqual(
      m.nodes.map((n) => n.id),
      ['n1', 'n2'],
      'sorted by set, then id',
    );
    assert.deepEqual(m.nodes[0]?.drain, drain);
    assert.equal(m.nodes[1]?.drain, null);
    assert.deepEqual(
      m.orphanIntents.map((o) => o.id),
      ['ghost'],
    );
    assert.deepEqual(m.rejected, [{ key: '/switchyard/nodes/bad', reason: 'node record is not valid JSON' }]);
    assert.deepEqual(m.services, [{ name: 'kamailio', state: 'running', detail: null }]);
    assert.equal(m.generator, null);
    assert.deepEqual(m.dispatchers, []);
  });
});

describe('console cluster - drain tracker', () => {
  const counted = (id: string, calls: number, extra: Partial<NodeRecord> = {}) =>
    record(id, { calls, stats: { phase: 'up', callsSource: 'capture' }, ...extra });
  const draining = { n1: intent({ drain: true }) };

  test('drain - waits while calls are up and is done when they reach zero', () => {
    const tracker = createDrainTracker();
    const begun = tracker.begin('n1', 'ops', 3, T);
    assert.deepEqual(begun, {
      nodeId: 'n1',
      startedAt: iso(),
      by: 'ops',
      startCalls: 3,
      calls: 3,
      state: 'waiting',
      finishedAt: null,
    });
    assert.deepEqual(tracker.update(view({ nodes: [counted('n1', 2)], intents: draining }), T + 1000), []);
    assert.equal(tracker.all().get('n1')?.calls, 2);
    assert.equal(tracker.all().get('n1')?.state, 'waiting');

    const changed = tracker.update(view({ nodes: [counted('n1', 0)], intents: draining }), T + 2000);
    assert.equal(changed.length, 1);
    assert.equal(changed[0]?.state, 'done');
    assert.equal(changed[0]?.calls, 0);
    assert.equal(changed[0]?.startCalls, 3);
    assert.equal(changed[0]?.finishedAt, iso(2000));
    // Reported once; later views leave it as it ended.
    assert.deepEqual(tracker.update(view({ nodes: [counted('n1', 5)], intents: draining }), T + 3000), []);
    assert.equal(tracker.all().get('n1')?.state, 'done');
    assert.equal(tracker.all().get('n1')?.calls, 0);
  });

  test('drain - is cancelled when the drain intent is lifted first', () => {
    const tracker = createDrainTracker();
    tracker.begin('n1', 'ops', 3, T);
    const changed = tracker.update(
      view({ nodes: [counted('n1', 3)], intents: { n1: intent({ drain: false }) } }),
      T + 1000,
    );
    assert.deepEqual(
      changed.map((d) => [d.nodeId, d.state, d.finishedAt]),
      [['n1', 'cancelled', iso(1000)]],
    );
    // No intent at all (cleared) cancels too.
    const other = createDrainTracker();
    other.begin('n1', 'ops', 3, T);
    assert.equal(other.update(view({ nodes: [counted('n1', 3)] }), T)[0]?.state, 'cancelled');
  });

  test('drain - without a call count, done when the agent says drained', () => {
    const tracker = createDrainTracker();
    tracker.begin('n1', 'ops', null, T);
    const uncounted = (state: NodeRecord['state']) =>
      record('n1', { state, calls: 0, stats: { phase: 'draining' } });
    assert.deepEqual(tracker.update(view({ nodes: [uncounted('ready')], intents: draining }), T + 100), []);
    assert.deepEqual(
      tracker.update(view({ nodes: [uncounted('draining')], intents: draining }), T + 200),
      [],
    );
    const waiting = tracker.all().get('n1');
    assert.equal(waiting?.state, 'waiting');
    assert.equal(waiting?.calls, null, 'a 0 from an agent that counts nothing is not trusted');
    const changed = tracker.update(view({ nodes: [uncounted('drained')], intents: draining }), T + 300);
    assert.deepEqual(
      changed.map((d) => [d.state, d.calls]),
      [['done', null]],
    );
  });

  test('drain - a node that is gone or static is done at once', () => {
    const tracker = createDrainTracker();
    tracker.begin('gone', 'ops', 2, T);
    tracker.begin('pbx', 'ops', null, T);
    const changed = tracker.update(
      view({
        statics: [staticNode('pbx')],
        intents: { gone: intent({ drain: true }), pbx: intent({ drain: true }) },
      }),
      T + 10,
    );
    assert.deepEqual(changed.map((d) => [d.nodeId, d.state]).sort(), [
      ['gone', 'done'],
      ['pbx', 'done'],
    ]);
  });

  test('drain - finished drains are dropped after keepFinishedMs', () => {
    const tracker = createDrainTracker({ keepFinishedMs: 60_000 });
    tracker.begin('n1', 'ops', 1, T);
    tracker.begin('n2', 'ops', 1, T);
    const v0 = view({
      nodes: [counted('n1', 0), counted('n2', 1)],
      intents: { ...draining, n2: intent({ drain: true }) },
    });
    tracker.update(v0, T + 1000);
    assert.equal(tracker.all().get('n1')?.state, 'done');
    tracker.update(v0, T + 61_000);
    assert.ok(tracker.all().has('n1'), 'kept for exactly keepFinishedMs');
    tracker.update(v0, T + 61_001);
    assert.equal(tracker.all().has('n1'), false);
    assert.equal(tracker.all().get('n2')?.state, 'waiting', 'drains still waiting are kept');
  });

  test('drain - beginning again restarts the tracking', () => {
    const tracker = createDrainTracker();
    tracker.begin('n1', 'ops', 1, T);
    tracker.update(view({ nodes: [counted('n1', 0)], intents: draining }), T + 1);
    const again = tracker.begin('n1', 'alice', 4, T + 2);
    assert.equal(again.state, 'waiting');
    assert.equal(tracker.all().get('n1')?.by, 'alice');
  });
});

describe('console event log', () => {
  const ev = (tsUs: number, kind = 'node.state'): LogEvent => ({
    tsUs,
    kind,
    subject: `n${tsUs}`,
    actor: 'registry',
    detail: {},
  });

  test('event log - keeps only the newest `size` events', () => {
    const log = createEventLog({ size: 3 });
    for (let i = 1; i <= 5; i++) log.append(ev(i));
    assert.deepEqual(
      log.list().map((e) => e.tsUs),
      [5, 4, 3],
    );
  });

  test('event log - lists newest first, bounded by limit and afterUs', () => {
    const log = createEventLog();
    for (let i = 1; i <= 300; i++) log.append(ev(i * 10));
    assert.equal(log.list().length, 200, 'default limit');
    assert.deepEqual(
      log.list({ limit: 3 }).map((e) => e.tsUs),
      [3000, 2990, 2980],
    );
    assert.deepEqual(
      log.list({ afterUs: 2970 }).map((e) => e.tsUs),
      [3000, 2990, 2980],
      'strictly after',
    );
    assert.deepEqual(
      log.list({ afterUs: 2950, limit: 2 }).map((e) => e.tsUs),
      [3000, 2990],
    );
    assert.deepEqual(log.list({ afterUs: 3000 }), []);
    assert.deepEqual(createEventLog().list(), []);
  });

  test('event log - subscribers get each event; a throwing one is dropped', () => {
    const sunk: LogEvent[] = [];
    const log = createEventLog({ sink: (e) => sunk.push(e) });
    const good: number[] = [];
    let badCalls = 0;
    log.subscribe(() => {
      badCalls++;
      throw new Error('subscriber bug');
    });
    const unsubscribe = log.subscribe((e) => good.push(e.tsUs));
    const late: number[] = [];
    log.subscribe((e) => late.push(e.tsUs));
    log.append(ev(1));
    log.append(ev(2));
    assert.equal(badCalls, 1, 'dropped after its first throw');
    assert.deepEqual(good, [1, 2]);
    assert.deepEqual(late, [1, 2], 'the others still get every event');
    unsubscribe();
    log.append(ev(3));
    assert.deepEqual(good, [1, 2]);
    assert.deepEqual(late, [1, 2, 3]);
    assert.deepEqual(
      sunk.map((e) => e.tsUs),
      [1, 2, 3],
    );
  });
});

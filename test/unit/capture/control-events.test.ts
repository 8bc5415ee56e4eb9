import assert from 'node:assert/strict';
import { test } from 'node:test';
import { controlEvents } from '../../../src/capture/control-events.ts';
import type { DispatcherStatus, Intent, NodeRecord } from '../../../src/registry/records.ts';
import { emptyView, type RegistryView } from '../../../src/registry/view.ts';

const node = (id: string, state: NodeRecord['state'], phase?: string): NodeRecord => ({
  id,
  setId: 1,
  uri: 'sip:10.0.0.1:5060',
  priority: 0,
  state,
  calls: 3,
  version: '',
  startedAt: '2026-12-01T00:00:00Z',
  updatedAt: '2026-12-01T00:00:00Z',
  ...(phase === undefined ? {} : { stats: { phase } }),
});
const intent = (over: Partial<Intent> = {}): Intent => ({
  drain: false,
  disable: false,
  by: 'op',
  updatedAt: '2026-12-01T00:00:00Z',
  ...over,
});
const dispatcher = (generation: number, lastError?: string): DispatcherStatus => ({
  name: 'lb1',
  kamailioRpc: 'http://127.0.0.1:5071/RPC',
  listFile: '/x',
  generation,
  appliedHash: 'h',
  inSync: true,
  registryConnected: true,
  kamailioReachable: true,
  driftRepairs: 0,
  nodes: 1,
  updatedAt: '2026-12-01T00:00:00Z',
  ...(lastError === undefined ? {} : { lastError }),
});
const view = (parts: Partial<RegistryView>): RegistryView => ({ ...emptyView(), ...parts });

test('control events - node appears, changes state and phase, goes away', () => {
  const a = view({});
  const b = view({ nodes: new Map([['pbx1', node('pbx1', 'starting', 'warm-up')]]) });
  const c = view({ nodes: new Map([['pbx1', node('pbx1', 'draining', 'draining')]]) });
  assert.deepEqual(
    controlEvents(a, b, 1).map((e) => [e.kind, e.subject]),
    [['node.up', 'pbx1']],
  );
  assert.deepEqual(
    controlEvents(b, c, 2).map((e) => [e.kind, e.detail]),
    [
      ['node.state', { from: 'starting', to: 'draining', calls: 3 }],
      ['node.phase', { from: 'warm-up', to: 'draining' }],
    ],
  );
  assert.deepEqual(
    controlEvents(c, a, 3).map((e) => [e.kind, e.detail]),
    [['node.gone', { lastState: 'draining' }]],
  );
});

test('control events - a re-announce that changes nothing is no event; intents and dispatcher applies are', () => {
  const b = view({ nodes: new Map([['pbx1', node('pbx1', 'ready')]]) });
  assert.deepEqual(controlEvents(b, view({ nodes: new Map([['pbx1', node('pbx1', 'ready')]]) }), 1), []);
  const withIntent = view({ intents: new Map([['pbx1', intent({ drain: true, reason: 'patching' })]]) });
  assert.deepEqual(
    controlEvents(view({}), withIntent, 1).map((e) => [e.kind, e.detail]),
    [['intent.set', { drain: true, disable: false, by: 'op', reason: 'patching' }]],
  );
  assert.deepEqual(
    controlEvents(withIntent, view({}), 1).map((e) => e.kind),
    ['intent.cleared'],
  );
  const d1 = view({ dispatchers: new Map([['lb1', dispatcher(1)]]) });
  const d2 = view({ dispatchers: new Map([['lb1', dispatcher(2, 'kamailio unreachable')]]) });
  assert.deepEqual(
    controlEvents(d1, d2, 1).map((e) => e.kind),
    ['dispatcher.apply', 'dispatcher.error'],
  );
  assert.deepEqual(controlEvents(d2, d2, 1), []);
});

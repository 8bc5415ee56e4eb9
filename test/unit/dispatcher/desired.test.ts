import assert from 'node:assert/strict';
import { test } from 'node:test';
import { computeDesired, effectiveState } from '../../../src/dispatcher/desired.ts';
import type { Intent, NodeRecord, StaticNode } from '../../../src/registry/records.ts';
import { emptyView, type RegistryView } from '../../../src/registry/view.ts';

const T = '2026-11-22T00:00:00.000Z';
const node = (id: string, over: Partial<NodeRecord> = {}): NodeRecord => ({
  id,
  setId: 1,
  uri: `sip:10.0.0.${id.length + 10}:5060`,
  priority: 0,
  state: 'ready',
  calls: 0,
  version: '',
  startedAt: T,
  updatedAt: T,
  ...over,
});
const intent = (over: Partial<Intent>): Intent => ({
  drain: false,
  disable: false,
  by: 'op',
  updatedAt: T,
  ...over,
});
const viewOf = (
  nodes: NodeRecord[],
  intents: Record<string, Intent> = {},
  statics: StaticNode[] = [],
): RegistryView => ({
  ...emptyView(),
  nodes: new Map(nodes.map((n) => [n.id, n])),
  intents: new Map(Object.entries(intents)),
  statics: new Map(statics.map((s) => [s.id, s])),
});

test('desired - operator intent wins over the node state', () => {
  assert.equal(effectiveState({ state: 'ready' }, intent({ drain: true })), 'drained');
  assert.equal(effectiveState({ state: 'ready' }, intent({ disable: true, drain: true })), 'disabled');
  assert.equal(effectiveState({ state: 'down' }, undefined), 'down');
  assert.equal(effectiveState({ state: 'ready' }, intent({})), 'in-rotation');
});

test('desired - not-ready nodes stay listed but disabled; weight override applies', () => {
  const { destinations } = computeDesired(
    viewOf([node('a'), node('bb', { state: 'starting' }), node('ccc', { weight: 30 })], {
      ccc: intent({ weight: 80 }),
      a: intent({ drain: true }),
    }),
  );
  const byId = new Map(destinations.map((d) => [d.duid, d]));
  assert.equal(byId.get('a')?.enabled, false);
  assert.equal(byId.get('a')?.byOperator, true);
  assert.equal(byId.get('bb')?.enabled, false);
  assert.equal(byId.get('bb')?.byOperator, false);
  assert.equal(byId.get('ccc')?.enabled, true);
  assert.equal(byId.get('ccc')?.weight, 80);
});

test('desired - static nodes join, agent record wins on the same id, duplicate URIs are refused', () => {
  const statics: StaticNode[] = [
    { id: 's1', setId: 1, uri: 'sip:10.9.9.9', priority: 0, addedAt: T, addedBy: 'op' },
    { id: 'a', setId: 1, uri: 'sip:10.9.9.8', priority: 0, addedAt: T, addedBy: 'op' },
    { id: 'dup', setId: 1, uri: 'sip:10.0.0.11:5060', priority: 0, addedAt: T, addedBy: 'op' },
  ];
  const { destinations, conflicts } = computeDesired(viewOf([node('a')], {}, statics));
  assert.deepEqual(
    destinations.map((d) => [d.duid, d.source]),
    [
      ['a', 'agent'],
      ['s1', 'static'],
    ],
  );
  assert.match(conflicts.get('dup') ?? '', /same URI/);
});

test('desired - only the managed sets are kept', () => {
  const { destinations } = computeDesired(viewOf([node('a'), node('bb', { setId: 2 })]), [2]);
  assert.deepEqual(
    destinations.map((d) => d.duid),
    ['bb'],
  );
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DesiredDestination } from '../../../src/dispatcher/desired.ts';
import { createRemovalGuard } from '../../../src/dispatcher/removal-guard.ts';

const d = (duid: string, over: Partial<DesiredDestination> = {}): DesiredDestination => ({
  setId: 1,
  uri: `sip:10.0.0.${duid.charCodeAt(0) % 200}:5060`,
  duid,
  enabled: true,
  priority: 0,
  weight: 10,
  source: 'agent',
  effective: 'in-rotation',
  byOperator: false,
  ...over,
});
const ids = (xs: DesiredDestination[]) => xs.map((x) => `${x.duid}:${x.enabled ? 'on' : 'off'}`).sort();
const opts = { maxFraction: 0.5, alwaysAllow: 1 };

test('removal-guard - first apply and small removals pass', () => {
  const g = createRemovalGuard(opts);
  const all = [d('a'), d('b'), d('c'), d('e')];
  assert.deepEqual(ids(g.apply(all, undefined, 0).destinations), ids(all));
  const r = g.apply([d('a'), d('b'), d('c')], all, 1);
  assert.deepEqual(r.held, []);
  assert.equal(r.destinations.length, 3);
});

test('removal-guard - most of a set vanishing is held until probes say the nodes are gone', () => {
  const g = createRemovalGuard(opts);
  const all = [d('a'), d('b'), d('c'), d('e')];
  const r = g.apply([d('a')], all, 10);
  assert.deepEqual(ids(r.destinations), ['a:on', 'b:on', 'c:on', 'e:on']);
  assert.deepEqual(r.held, [{ setId: 1, nodes: ['b', 'c', 'e'], since: 10 }]);
  assert.equal(r.toProbe.length, 3);
  // b and c really are dead; e still answers OPTIONS
  assert.equal(g.reportProbe(1, 'b', false), true);
  assert.equal(g.reportProbe(1, 'c', false), true);
  assert.equal(g.reportProbe(1, 'e', true), false);
  const r2 = g.apply([d('a')], r.destinations, 20);
  assert.deepEqual(ids(r2.destinations), ['a:on', 'e:on']);
  assert.deepEqual(r2.held, [{ setId: 1, nodes: ['e'], since: 10 }]);
});

test('removal-guard - nodes reporting down en masse are held too, but operator drains never', () => {
  const g = createRemovalGuard(opts);
  const all = [d('a'), d('b'), d('c')];
  const down = g.apply([d('a'), d('b', { enabled: false }), d('c', { enabled: false })], all, 0);
  assert.deepEqual(ids(down.destinations), ['a:on', 'b:on', 'c:on']);
  const g2 = createRemovalGuard(opts);
  const drained = g2.apply(
    [d('a'), d('b', { enabled: false, byOperator: true }), d('c', { enabled: false, byOperator: true })],
    all,
    0,
  );
  assert.deepEqual(ids(drained.destinations), ['a:on', 'b:off', 'c:off']);
  assert.deepEqual(drained.held, []);
});

test('removal-guard - records coming back clear the hold; maxFraction 1 disables the guard', () => {
  const g = createRemovalGuard(opts);
  const all = [d('a'), d('b'), d('c')];
  g.apply([], all, 0);
  const back = g.apply(all, all, 1);
  assert.deepEqual(back.held, []);
  assert.equal(g.heldCount(), 0);
  const off = createRemovalGuard({ maxFraction: 1, alwaysAllow: 0 });
  assert.deepEqual(off.apply([], all, 0).destinations, []);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
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
const opts = { maxFraction: 0.5, alwaysAllow: 1, windowMs: 10_000 };

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
  const off = createRemovalGuard({ maxFraction: 1, alwaysAllow: 0, windowMs: 10_000 });
  assert.deepEqual(off.apply([], all, 0).destinations, []);
});

test('removal-guard - removals arriving one event at a time within the window are one change', () => {
  const g = createRemovalGuard(opts);
  const all = [d('a'), d('b'), d('c'), d('e')];
  // a goes alone: within alwaysAllow, applied.
  const r1 = g.apply([d('b'), d('c'), d('e')], all, 0);
  assert.deepEqual(r1.held, []);
  // b goes 100 ms later: 2 of the 4 that were active, not more than half: applied.
  const r2 = g.apply([d('c'), d('e')], r1.destinations, 100);
  assert.deepEqual(r2.held, []);
  // c goes next: 3 of 4 within the window, held.
  const r3 = g.apply([d('e')], r2.destinations, 200);
  assert.deepEqual(r3.held, [{ setId: 1, nodes: ['c'], since: 200 }]);
  assert.deepEqual(ids(r3.destinations), ['c:on', 'e:on']);
});

test('removal-guard - outside the window each removal is judged alone; a returning node leaves the window', () => {
  const g = createRemovalGuard(opts);
  const all = [d('a'), d('b'), d('c')];
  const r1 = g.apply([d('b'), d('c')], all, 0);
  assert.deepEqual(r1.held, []);
  // 11 s later b goes: the earlier removal no longer counts.
  assert.deepEqual(g.apply([d('c')], r1.destinations, 11_000).held, []);
  const g2 = createRemovalGuard(opts);
  const s1 = g2.apply([d('b'), d('c')], all, 0);
  const s2 = g2.apply(all, s1.destinations, 50); // a is back
  assert.deepEqual(g2.apply([d('a'), d('c')], s2.destinations, 100).held, [], 'only b is lost now');
});

test('removal-guard - nodes vanishing one by one in any order: at most half go (property)', () => {
  // Whatever order and spacing (inside the window) the nodes of a 10-node set vanish in, the
  // guard lets through max(alwaysAllow, floor(maxFraction * 10)) = 5 of them, no more.
  const names = 'abcdefghij'.split('');
  fc.assert(
    fc.property(
      fc.shuffledSubarray(names, { minLength: 6, maxLength: 10 }),
      fc.array(fc.integer({ min: 0, max: 999 }), { minLength: 10, maxLength: 10 }),
      (order, gaps) => {
        const g = createRemovalGuard(opts);
        let applied = names.map((n) => d(n));
        let registry = [...names];
        let t = 0;
        for (const [i, gone] of order.entries()) {
          registry = registry.filter((n) => n !== gone);
          t += gaps[i]!;
          applied = g.apply(
            registry.map((n) => d(n)),
            applied,
            t,
          ).destinations;
        }
        assert.equal(applied.length, 5, ids(applied).join());
      },
    ),
  );
});

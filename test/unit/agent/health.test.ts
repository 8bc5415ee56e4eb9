import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createHealthTracker } from '../../../src/agent/health.ts';

test('health - starts unhealthy; successesToUp good probes make it healthy', () => {
  const h = createHealthTracker({ failuresToDown: 3, successesToUp: 2 });
  assert.equal(h.healthy(), false);
  assert.equal(h.record(true), false);
  assert.equal(h.record(true), true);
  assert.equal(h.healthy(), true);
});

test('health - one or two lost probes do not flap; the third in a row does', () => {
  const h = createHealthTracker({ failuresToDown: 3, successesToUp: 2 });
  h.record(true);
  h.record(true);
  h.record(false);
  h.record(false);
  h.record(true); // the streak is broken
  h.record(false);
  h.record(false);
  assert.equal(h.healthy(), true);
  assert.equal(h.record(false), true);
  assert.equal(h.healthy(), false);
  assert.deepEqual(h.streak(), { ok: false, count: 3 });
  h.reset();
  assert.deepEqual(h.streak(), { ok: false, count: 0 });
});

test('health - never changes state against fewer than the configured streak (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.boolean(), { maxLength: 200 }),
      (down, up, probes) => {
        const h = createHealthTracker({ failuresToDown: down, successesToUp: up });
        let run = 0;
        let last: boolean | undefined;
        for (const ok of probes) {
          run = ok === last ? run + 1 : 1;
          last = ok;
          const was = h.healthy();
          const changed = h.record(ok);
          if (changed) {
            assert.equal(h.healthy(), ok, 'a change always follows the probe');
            assert.ok(run >= (ok ? up : down), `changed after a streak of ${run}`);
          } else assert.equal(h.healthy(), was);
        }
      },
    ),
  );
});

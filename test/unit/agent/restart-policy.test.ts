import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  crashLoopReason,
  createBackoff,
  createCrashLoopDetector,
  describeExit,
  stableAfterMs,
} from '../../../src/agent/restart-policy.ts';

test('restart-policy - back-off doubles from the initial delay up to the ceiling', () => {
  const b = createBackoff({ initialMs: 500, maxMs: 30_000 });
  const delays = Array.from({ length: 10 }, () => b.next());
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000]);
  assert.equal(b.attempts, 10);
});

test('restart-policy - back-off starts over after reset (a stable run)', () => {
  const b = createBackoff({ initialMs: 100, maxMs: 1000 });
  b.next();
  b.next();
  b.reset();
  assert.equal(b.attempts, 0);
  assert.equal(b.next(), 100);
});

test('restart-policy - back-off never exceeds the ceiling nor overflows, however long the loop', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 600_000 }), fc.integer({ min: 0, max: 3_600_000 }), (a, b) => {
      const initialMs = Math.min(a, b);
      const maxMs = Math.max(a, b);
      const backoff = createBackoff({ initialMs, maxMs });
      let previous = -1;
      for (let i = 0; i < 200; i++) {
        const d = backoff.next();
        assert.ok(Number.isFinite(d) && d >= initialMs && d <= maxMs);
        assert.ok(d >= previous, 'non-decreasing');
        previous = d;
      }
    }),
  );
});

test('restart-policy - a run counts as stable after 60 s or twice the longest back-off', () => {
  assert.equal(stableAfterMs(30_000), 60_000);
  assert.equal(stableAfterMs(45_000), 90_000);
});

test('restart-policy - crash loop: K restarts within the window, the next one is refused', () => {
  const d = createCrashLoopDetector({ maxRestarts: 3, windowMs: 10_000 });
  for (const t of [0, 1000, 2000]) {
    assert.ok(d.allows(t));
    d.record(t);
  }
  assert.equal(d.allows(3000), false);
  assert.equal(d.count(3000), 3);
});

test('restart-policy - crash loop: the window slides, so slow flapping never trips it', () => {
  const d = createCrashLoopDetector({ maxRestarts: 3, windowMs: 10_000 });
  for (let t = 0; t < 200_000; t += 4000) {
    assert.ok(d.allows(t), `at ${t}`);
    d.record(t);
  }
  // Exactly at the window's edge the oldest restart has aged out.
  const e = createCrashLoopDetector({ maxRestarts: 1, windowMs: 10_000 });
  e.record(0);
  assert.equal(e.allows(9999), false);
  assert.ok(e.allows(10_000));
});

test('restart-policy - crash loop: reset forgets every restart (operator retry)', () => {
  const d = createCrashLoopDetector({ maxRestarts: 1, windowMs: 10_000 });
  d.record(0);
  assert.equal(d.allows(1), false);
  d.reset();
  assert.ok(d.allows(1));
});

test('restart-policy - reasons say how many restarts in what window and how the last run ended', () => {
  const opts = { maxRestarts: 5, windowMs: 300_000 };
  assert.equal(crashLoopReason(opts, { code: 1, signal: null }), '5 restarts within 300 s; last exit code 1');
  assert.equal(
    crashLoopReason({ maxRestarts: 2, windowMs: 1500 }, { code: null, signal: 'SIGSEGV' }),
    '2 restarts within 1500 ms; last killed by SIGSEGV',
  );
  assert.equal(
    describeExit({ code: null, signal: null, error: 'spawn asterisk ENOENT' }),
    'start failed: spawn asterisk ENOENT',
  );
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { captureConfigSchema } from '../../../src/capture/config.ts';
import type { RetentionPolicy } from '../../../src/capture/model.ts';
import { retentionPolicyOf, startRetentionLoop } from '../../../src/capture/retention.ts';
import { createSilentLogger } from '../../../src/core/logger.ts';
import { createMetricsRegistry } from '../../../src/core/metrics.ts';

const logger = createSilentLogger();
const retentionConfig = (r: Record<string, number>) => captureConfigSchema.parse({ retention: r }).retention;

test('retention policy - hours become milliseconds and MiB become bytes', () => {
  assert.deepEqual(retentionPolicyOf(retentionConfig({ maxAgeHours: 2, maxSizeMb: 3 })), {
    maxAgeMs: 7_200_000,
    maxBytes: 3_145_728,
  });
  // The defaults: 7 days, 10 GiB.
  assert.deepEqual(retentionPolicyOf(retentionConfig({})), {
    maxAgeMs: 604_800_000,
    maxBytes: 10_737_418_240,
  });
});

test('retention policy - 0 means no limit of that kind', () => {
  assert.deepEqual(retentionPolicyOf(retentionConfig({ maxAgeHours: 0, maxSizeMb: 0 })), {});
  // A tiny age still keeps something: 0 ms would mean "remove everything".
  assert.deepEqual(retentionPolicyOf(retentionConfig({ maxAgeHours: 1e-9, maxSizeMb: 0 })), { maxAgeMs: 1 });
  assert.deepEqual(retentionPolicyOf(retentionConfig({ maxAgeHours: 0, maxSizeMb: 1 })), {
    maxBytes: 1_048_576,
  });
});

test('retention policy - fractional hours give whole milliseconds (the stores refuse others)', () => {
  // 1.1 * 3_600_000 is 3960000.0000000005 and 2.3 * 3_600_000 is 8279999.999999999 in floating point.
  assert.equal(retentionPolicyOf(retentionConfig({ maxAgeHours: 1.1 })).maxAgeMs, 3_960_000);
  assert.equal(retentionPolicyOf(retentionConfig({ maxAgeHours: 2.3 })).maxAgeMs, 8_280_000);
  assert.equal(retentionPolicyOf(retentionConfig({ maxAgeHours: 0.0001 })).maxAgeMs, 360);
});

test('retention loop - runs every interval with the policy, reports a failure until a run succeeds, stops', async () => {
  const metrics = createMetricsRegistry();
  const policy: RetentionPolicy = { maxAgeMs: 1000 };
  const runs: number[] = [];
  const outcomes: Array<number | Error> = [3, new Error('store is away'), 0];
  const seen: RetentionPolicy[] = [];
  const loop = startRetentionLoop({
    policy,
    intervalMs: 30,
    apply: async (p) => {
      seen.push(p);
      runs.push(Date.now());
      const next = outcomes.shift() ?? 0;
      if (next instanceof Error) throw next;
      return next;
    },
    metrics,
    logger,
  });
  assert.equal(loop.policy, policy);
  const started = Date.now();
  const gauge = async () =>
    (await metrics.getSingleMetric('switchyard_capture_retention_last_removed_messages')?.get())?.values[0]
      ?.value;
  while (runs.length < 1) await new Promise((r) => setTimeout(r, 5));
  assert.ok(runs[0] !== undefined && runs[0] - started >= 25, 'the first run waits one interval');
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(await gauge(), 3);
  while (runs.length < 2) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 5));
  assert.match(loop.lastError() ?? '', /store is away/);
  assert.equal(await gauge(), 3, 'a failed run leaves the last count');
  while (runs.length < 3) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(loop.lastError(), undefined, 'a successful run clears the error');
  assert.equal(await gauge(), 0);
  loop.stop();
  const count = runs.length;
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(runs.length, count, 'no run after stop');
  assert.ok(seen.every((p) => p === policy));
});

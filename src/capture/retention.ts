import { describeError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { Gauge, METRIC_PREFIX, type Registry } from '../core/metrics.ts';
import type { CaptureConfig } from './config.ts';
import type { RetentionPolicy } from './model.ts';

/**
 * The capture role's periodic retention: the config's hours and MiB turned into the store's
 * policy, and the timer that applies it through the ingest worker (the only thread that writes).
 */

const MS_PER_HOUR = 3_600_000;
const BYTES_PER_MIB = 1024 * 1024;

/** The store's policy from the config: hours to ms, MiB to bytes; 0 means "no limit". */
export function retentionPolicyOf(retention: CaptureConfig['retention']): RetentionPolicy {
  return {
    // Rounded: hours may be fractional (1.1 h is 3960000.0000000005 ms in floating point) and the
    // stores accept whole milliseconds only; at least 1 ms, since 0 would mean "keep nothing".
    ...(retention.maxAgeHours > 0
      ? { maxAgeMs: Math.max(1, Math.round(retention.maxAgeHours * MS_PER_HOUR)) }
      : {}),
    ...(retention.maxSizeMb > 0 ? { maxBytes: retention.maxSizeMb * BYTES_PER_MIB } : {}),
  };
}

export interface RetentionLoopOptions {
  policy: RetentionPolicy;
  intervalMs: number;
  /** Applies the policy now; resolves with the messages removed (CaptureServer.applyRetention). */
  apply: (policy: RetentionPolicy) => Promise<number>;
  metrics: Registry;
  logger: Logger;
}

export interface RetentionLoop {
  /** What each run applies. */
  readonly policy: RetentionPolicy;
  /** Why the last run failed; undefined when it succeeded (or none has run yet). */
  lastError(): string | undefined;
  stop(): void;
}

/**
 * Runs retention every `intervalMs`, first one interval after the start. Chained, not an
 * interval: a long run never overlaps the next.
 */
export function startRetentionLoop(opts: RetentionLoopOptions): RetentionLoop {
  const { policy, logger } = opts;
  const removedGauge = new Gauge({
    name: `${METRIC_PREFIX}capture_retention_last_removed_messages`,
    help: 'Messages removed by the last retention run',
    registers: [opts.metrics],
  });
  let lastError: string | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer = setTimeout(() => {
      opts
        .apply(policy)
        .then(
          (removed) => {
            lastError = undefined;
            removedGauge.set(removed);
            if (removed > 0) logger.info({ removed, policy }, 'retention removed old messages');
          },
          (err: unknown) => {
            lastError = describeError(err);
            logger.warn({ err: lastError, policy }, 'retention failed');
          },
        )
        .finally(() => {
          if (!stopped) schedule();
        });
    }, opts.intervalMs);
    timer.unref();
  };
  schedule();
  return {
    policy,
    lastError: () => lastError,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/**
 * The arithmetic of restarting, kept free of processes and timers so that it is tested
 * deterministically. Whaleware restarted at once on the first failed check, with no back-off
 * and no limit (research/seed-systems.md §5): a service that cannot start was restarted every
 * 30 s for ever. Here restarts back off exponentially and a crash loop ends in `failed`.
 */

export interface BackoffOptions {
  /** Delay of the first restart. */
  initialMs: number;
  /** Ceiling of the delay. */
  maxMs: number;
}

/** Exponential back-off: initial, 2x, 4x... up to max; `reset()` after a stable run. */
export interface Backoff {
  /** The delay of the next restart, and counts it. */
  next(): number;
  /** Back to the initial delay: the process ran long enough to call the last start a success. */
  reset(): void;
  /** Consecutive restarts since the last reset. */
  readonly attempts: number;
}

export function createBackoff(opts: BackoffOptions): Backoff {
  let attempts = 0;
  return {
    next() {
      // The exponent is capped so that 2 ** n stays finite however long the loop.
      const delay = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(attempts, 40));
      attempts++;
      return delay;
    },
    reset() {
      attempts = 0;
    },
    get attempts() {
      return attempts;
    },
  };
}

/**
 * How long a process must stay up for its start to count as good (the back-off resets): the
 * larger of 60 s and twice the longest back-off. Twice the ceiling so that a process which
 * crashes a little after a maximal delay still climbs the ladder instead of resetting on it.
 */
export function stableAfterMs(maxBackoffMs: number): number {
  return Math.max(60_000, 2 * maxBackoffMs);
}

export interface CrashLoopOptions {
  /** Restarts allowed within the window; one more and the loop is declared. */
  maxRestarts: number;
  windowMs: number;
}

/** Counts restarts in a sliding window. Times are from one monotonic clock (ms). */
export interface CrashLoopDetector {
  /** Whether one more restart is allowed at `nowMs` (fewer than maxRestarts in the window). */
  allows(nowMs: number): boolean;
  /** Records a restart made at `nowMs`. */
  record(nowMs: number): void;
  /** Restarts within the window ending at `nowMs`. */
  count(nowMs: number): number;
  /** Forgets every restart: an operator asked to try again. */
  reset(): void;
}

export function createCrashLoopDetector(opts: CrashLoopOptions): CrashLoopDetector {
  let times: number[] = [];
  const prune = (nowMs: number) => {
    times = times.filter((t) => nowMs - t < opts.windowMs);
  };
  return {
    allows(nowMs) {
      prune(nowMs);
      return times.length < opts.maxRestarts;
    },
    record(nowMs) {
      prune(nowMs);
      times.push(nowMs);
    },
    count(nowMs) {
      prune(nowMs);
      return times.length;
    },
    reset() {
      times = [];
    },
  };
}

/** How the last run ended, for messages: "exit code 1", "signal SIGSEGV", "start failed: ...". */
export function describeExit(exit: {
  code: number | null;
  signal: string | null;
  error?: string | undefined;
}): string {
  if (exit.error !== undefined) return `start failed: ${exit.error}`;
  if (exit.signal !== null) return `killed by ${exit.signal}`;
  return `exit code ${exit.code ?? 'unknown'}`;
}

/** "5 restarts within 300 s; last exit code 1". */
export function crashLoopReason(
  opts: CrashLoopOptions,
  lastExit: { code: number | null; signal: string | null; error?: string | undefined },
): string {
  const window = opts.windowMs % 1000 === 0 ? `${opts.windowMs / 1000} s` : `${opts.windowMs} ms`;
  return `${opts.maxRestarts} restarts within ${window}; last ${describeExit(lastExit)}`;
}

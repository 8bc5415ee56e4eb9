/**
 * Health with hysteresis: one lost OPTIONS must not flap a node out of rotation, and one lucky
 * answer must not put a sick node back. The node turns unhealthy after `failuresToDown`
 * consecutive failed probes and healthy again after `successesToUp` consecutive good ones.
 */
export interface HysteresisOptions {
  failuresToDown: number;
  successesToUp: number;
}

export interface HealthTracker {
  /** Records one probe; returns true when this probe changed `healthy()`. */
  record(ok: boolean): boolean;
  healthy(): boolean;
  /** Consecutive results of the current streak (failures when the last probe failed). */
  streak(): { ok: boolean; count: number };
  /** Back to the initial state (unhealthy, no streak), e.g. after the process restarted. */
  reset(): void;
}

export function createHealthTracker(opts: HysteresisOptions): HealthTracker {
  let healthy = false;
  let lastOk = false;
  let count = 0;
  return {
    record(ok) {
      count = ok === lastOk ? count + 1 : 1;
      lastOk = ok;
      const before = healthy;
      if (healthy && !ok && count >= opts.failuresToDown) healthy = false;
      if (!healthy && ok && count >= opts.successesToUp) healthy = true;
      return before !== healthy;
    },
    healthy: () => healthy,
    streak: () => ({ ok: lastOk, count }),
    reset() {
      healthy = false;
      lastOk = false;
      count = 0;
    },
  };
}

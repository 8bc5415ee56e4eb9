import type { CaptureStore, RetentionPolicy, StoreStats } from './model.ts';

/**
 * What a capture store keeps, as the capture role's /readyz and the console's
 * `GET /api/v1/capture` show it: its span (oldest and newest message), size, the retention
 * policy and what its last run removed.
 */
export interface KeptSummary {
  store: CaptureStore['kind'];
  messages: number;
  calls: number;
  /** Stored SIP bytes (messages' raw text), not the database file. */
  bytes: number;
  oldest?: string;
  newest?: string;
  retention: RetentionPolicy & {
    lastRun?: string;
    lastRemovedMessages?: number;
    lastRemovedCalls?: number;
    /** Why the last run failed (the capture role only: it runs retention). */
    lastError?: string;
  };
}

const iso = (us: number) => new Date(us / 1000).toISOString();

/**
 * `policy` is the one the caller applies (the capture role's config); without it, the policy the
 * store recorded at its last retention run (what a console reading the store can know).
 */
export function keptSummary(
  kind: CaptureStore['kind'],
  stats: StoreStats,
  opts: { policy?: RetentionPolicy; lastError?: string | undefined } = {},
): KeptSummary {
  const last = stats.lastRetention;
  return {
    store: kind,
    messages: stats.messages,
    calls: stats.calls,
    bytes: stats.bytes,
    ...(stats.oldestTsUs === undefined ? {} : { oldest: iso(stats.oldestTsUs) }),
    ...(stats.newestTsUs === undefined ? {} : { newest: iso(stats.newestTsUs) }),
    retention: {
      ...(opts.policy ?? stats.retention),
      ...(last === undefined
        ? {}
        : {
            lastRun: iso(last.atUs),
            lastRemovedMessages: last.removedMessages,
            lastRemovedCalls: last.removedCalls,
          }),
      ...(opts.lastError === undefined ? {} : { lastError: opts.lastError }),
    },
  };
}

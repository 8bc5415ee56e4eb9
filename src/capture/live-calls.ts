import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { formatIp, parseIp } from '../proto/hep.ts';
import { formatEndpoint } from './call-summary.ts';
import type { CaptureStore, LiveCallCount } from './model.ts';

/**
 * Live call counts of backends without AMI (sipp, other SIP servers), derived from the SIP the
 * load balancer captured: a poll of CaptureStore.liveCalls turned into the agent's call source
 * (src/agent/agent.ts, CallSource: the node record's `calls`, the metrics and the drain wait).
 *
 * One poller serves many endpoints with one query per interval, because `switchyard up` runs
 * several agents in one process against one store. Polls are chained, never overlapping: at most
 * one query is in flight, whatever the store's latency. A failing store is logged once (and once
 * when it is back), and every source keeps its last count meanwhile (a drain keeps waiting on
 * it, bounded by its deadline); a source never counted stays undefined, which the agent treats
 * like AMI not synced yet.
 */

/** Structurally the agent's CallSource (src/agent/agent.ts); capture does not import the agent. */
export interface CaptureCallSource {
  readonly kind: 'capture';
  /** The endpoint counted, as the store spells it (`ip:port`, IPv6 `[addr]:port`, RFC 5952). */
  readonly endpoint: string;
  /** Live calls and channels (SIP dialogs) at the endpoint; undefined until the first poll answers. */
  calls(): { calls: number; channels: number } | undefined;
  /** Called when the count changes (and when it is first known). */
  onChange(fn: () => void): void;
  /** Stops counting this endpoint (and, for createCaptureCallSource, polling). Idempotent. */
  close(): void;
}

export interface LiveCallsPollerOptions {
  store: Pick<CaptureStore, 'liveCalls'>;
  /** Delay between the end of one poll and the start of the next; default 1000 ms. */
  pollIntervalMs?: number;
  /**
   * Only calls that began this long ago or less are counted; default 4 h. Forgets a call whose
   * BYE or final response the capture missed, so such a call cannot hold a drain for ever.
   */
  windowMs?: number;
  logger: Logger;
  /** Wall clock in ms (captured timestamps are wall-clock µs); default Date.now. */
  now?: () => number;
}

export interface LiveCallsPoller {
  /** A call source for one endpoint; several sources may share an endpoint. */
  sourceFor(endpoint: string): CaptureCallSource;
  /** Polls now (unless a poll is in flight: then waits for that one); resolves when done. */
  pollNow(): Promise<void>;
  /** Stops polling; an answer still in flight is ignored. Idempotent. */
  close(): void;
}

export const DEFAULT_LIVE_CALLS_POLL_INTERVAL_MS = 1000;
export const DEFAULT_LIVE_CALLS_WINDOW_MS = 4 * 3_600_000;

/**
 * `ip:port` in the store's spelling: IPv6 in brackets and RFC 5952 form (lower case, `::`), as
 * the HEP decoder writes addresses (src/proto/hep.ts formatIp). Throws SY_ERR_INVALID_ARGUMENT
 * for anything else (a host name never matches a captured address).
 */
export function normalizeLiveEndpoint(endpoint: string): string {
  const m = /^\s*(?:\[([^\]]+)\]|([^:[\]\s]+)):(\d{1,5})\s*$/.exec(endpoint);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  const bytes = host === undefined ? undefined : parseIp(host);
  if (!m || bytes === undefined || (m[2] !== undefined && bytes.length !== 4) || port > 65535) {
    throw new SwitchyardError(
      ErrorCode.INVALID_ARGUMENT,
      `live calls: endpoint ${JSON.stringify(endpoint)} is not ip:port (IPv6 as [addr]:port)`,
    );
  }
  return formatEndpoint(formatIp(bytes), port);
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `live calls: ${name} must be > 0, got ${value}`);
  return value;
}

interface Entry {
  count: LiveCallCount | undefined;
  sources: Set<SourceState>;
}

interface SourceState {
  listeners: Array<() => void>;
}

export function createLiveCallsPoller(opts: LiveCallsPollerOptions): LiveCallsPoller {
  const { store } = opts;
  const pollIntervalMs = positive(
    'pollIntervalMs',
    opts.pollIntervalMs ?? DEFAULT_LIVE_CALLS_POLL_INTERVAL_MS,
  );
  const windowMs = positive('windowMs', opts.windowMs ?? DEFAULT_LIVE_CALLS_WINDOW_MS);
  const now = opts.now ?? Date.now;
  const logger = opts.logger.child({ component: 'live-calls' });
  const entries = new Map<string, Entry>();
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let failing = false;
  let closed = false;

  function notify(entry: Entry): void {
    for (const s of entry.sources) {
      for (const fn of s.listeners) {
        try {
          fn();
        } catch (err) {
          logger.error({ err: describeError(err) }, 'live-call listener threw');
        }
      }
    }
  }

  async function pollOnce(): Promise<void> {
    const endpoints = [...entries.keys()];
    if (endpoints.length === 0) return;
    const asked = new Set(endpoints);
    let counts: Map<string, LiveCallCount>;
    try {
      counts = await store.liveCalls({ sinceUs: Math.floor((now() - windowMs) * 1000), endpoints });
    } catch (err) {
      if (!failing && !closed) {
        failing = true;
        logger.warn(
          { err: describeError(err), endpoints: endpoints.length },
          'live calls from capture unavailable; keeping the last counts',
        );
      }
      return;
    }
    if (closed) return;
    if (failing) {
      failing = false;
      logger.info('live calls from capture available again');
    }
    for (const [endpoint, entry] of entries) {
      // An endpoint added while the query ran is counted by the next poll.
      if (!asked.has(endpoint)) continue;
      const next = counts.get(endpoint) ?? { channels: 0, calls: 0, ringing: 0 };
      const prev = entry.count;
      if (
        prev &&
        prev.calls === next.calls &&
        prev.channels === next.channels &&
        prev.ringing === next.ringing
      )
        continue;
      entry.count = next;
      notify(entry);
    }
  }

  /** One poll at a time: a caller arriving during a poll shares it. */
  function poll(): Promise<void> {
    inFlight ??= pollOnce().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  }

  function schedule(delayMs: number): void {
    if (closed || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      void poll().finally(() => schedule(pollIntervalMs));
    }, delayMs);
    // Counting calls never keeps a process alive on its own.
    timer.unref();
  }

  function release(endpoint: string, state: SourceState): void {
    const entry = entries.get(endpoint);
    if (!entry) return;
    entry.sources.delete(state);
    if (entry.sources.size === 0) entries.delete(endpoint);
  }

  return {
    sourceFor(endpoint: string): CaptureCallSource {
      const key = normalizeLiveEndpoint(endpoint);
      if (closed) throw new SwitchyardError(ErrorCode.CLOSED, 'live calls poller closed');
      let entry = entries.get(key);
      if (!entry) {
        entry = { count: undefined, sources: new Set() };
        entries.set(key, entry);
      }
      const state: SourceState = { listeners: [] };
      entry.sources.add(state);
      let released = false;
      // The first count comes soon, not a whole interval later (unless a poll is running now:
      // the next one, an interval after it, counts the new endpoint).
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (!inFlight) schedule(0);
      return {
        kind: 'capture',
        endpoint: key,
        calls() {
          if (released) return undefined;
          const c = entries.get(key)?.count;
          return c === undefined ? undefined : { calls: c.calls, channels: c.channels };
        },
        onChange(fn) {
          state.listeners.push(fn);
        },
        close() {
          if (released) return;
          released = true;
          release(key, state);
        },
      };
    },
    pollNow: poll,
    close() {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}

export interface CaptureCallSourceOptions extends LiveCallsPollerOptions {
  /** The backend's SIP address as the load balancer talks to it: `ip:port`, IPv6 `[addr]:port`. */
  endpoint: string;
}

/** A call source for one backend, with a poller of its own (closed with the source). */
export function createCaptureCallSource(opts: CaptureCallSourceOptions): CaptureCallSource {
  const { endpoint, ...pollerOptions } = opts;
  const poller = createLiveCallsPoller(pollerOptions);
  const source = poller.sourceFor(endpoint);
  return {
    kind: 'capture',
    endpoint: source.endpoint,
    calls: () => source.calls(),
    onChange: (fn) => source.onChange(fn),
    close() {
      source.close();
      poller.close();
    },
  };
}

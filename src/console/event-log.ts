import type { LogEvent } from './model.ts';

/**
 * The console's event log: every control-plane change and operator action, newest last, in a
 * bounded ring (older ones live on in the capture store, where calls' timelines find them).
 * Subscribers (the SSE stream) get each event as it is appended; a throwing subscriber is
 * dropped rather than allowed to break the others.
 */
export interface EventLog {
  append(event: LogEvent): void;
  /** Newest first, at most `limit`, optionally only those after `afterUs`. */
  list(opts?: { limit?: number; afterUs?: number }): LogEvent[];
  subscribe(fn: (event: LogEvent) => void): () => void;
}

export const DEFAULT_EVENT_LOG_SIZE = 2000;

export function createEventLog(opts: { size?: number; sink?: (event: LogEvent) => void } = {}): EventLog {
  const size = opts.size ?? DEFAULT_EVENT_LOG_SIZE;
  const ring: LogEvent[] = [];
  const subscribers = new Set<(event: LogEvent) => void>();
  return {
    append(event) {
      ring.push(event);
      if (ring.length > size) ring.splice(0, ring.length - size);
      opts.sink?.(event);
      for (const fn of subscribers) {
        try {
          fn(event);
        } catch {
          subscribers.delete(fn);
        }
      }
    },
    list({ limit = 200, afterUs } = {}) {
      const out: LogEvent[] = [];
      for (let i = ring.length - 1; i >= 0 && out.length < limit; i--) {
        const e = ring[i] as LogEvent;
        if (afterUs !== undefined && e.tsUs <= afterUs) break;
        out.push(e);
      }
      return out;
    },
    subscribe(fn) {
      subscribers.add(fn);
      return () => void subscribers.delete(fn);
    },
  };
}

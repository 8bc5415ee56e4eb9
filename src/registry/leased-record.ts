import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { KvStore, Lease } from './store.ts';

/** Backoff between attempts to (re)write a leased record: 100 ms doubling to 5 s. */
export const LEASED_RETRY_INITIAL_MS = 100;
export const LEASED_RETRY_MAX_MS = 5000;

export interface LeasedRecordOptions {
  store: KvStore;
  key: string;
  ttlMs: number;
  logger: Logger;
  /** Renders the latest value at write time (so a re-put after a loss gets a fresh updatedAt). */
  render: () => string;
  onLost?: ((err: Error) => void) | undefined;
  onRecovered?: (() => void) | undefined;
  /** Counts lease losses (metrics). */
  countLoss?: (() => void) | undefined;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Keeps one key in the registry under a lease that this process keeps alive, and keeps it there:
 * if the lease is lost (a registry outage longer than the TTL, a revoke by someone else), a new
 * lease is granted and the latest value re-put, retrying with backoff until it works. The seed
 * system's worst bug was a node dropped for good after a registry blip
 * (research/ked-baseline.md §3.4); this loop is the fix.
 *
 * Writes are coalesced: `changed()` marks the value dirty and resolves once that value, or a later
 * one, is in the registry.
 */
export class LeasedRecord {
  readonly key: string;
  #opts: LeasedRecordOptions;
  #lease: Lease | undefined;
  /** Sequence number of the latest requested value and of the last one written. */
  #wantedSeq = 0;
  #writtenSeq = 0;
  #waiters: Waiter[] = [];
  #running = false;
  #stopped: 'revoke' | 'release' | undefined;
  #lostAt: number | undefined;
  #sleep: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  /** Errors of the current attempt series, for the first write's caller. */
  #lastError: Error | undefined;

  constructor(opts: LeasedRecordOptions) {
    this.key = opts.key;
    this.#opts = opts;
  }

  /** The value returned by render() changed: write it. Resolves once it (or a later one) is written. */
  changed(): Promise<void> {
    if (this.#stopped) return Promise.reject(closedError(this.key));
    const seq = ++this.#wantedSeq;
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ seq, resolve, reject }));
    this.#kick();
    return done;
  }

  /** The latest error of an attempt that failed, if the record is not written yet. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  /** Stops for good. 'revoke' deletes the key now; 'release' lets it expire after the TTL. */
  async stop(mode: 'revoke' | 'release'): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = mode;
    this.#wakeUp();
    for (const w of this.#waiters.splice(0)) w.reject(closedError(this.key));
    const lease = this.#lease;
    this.#lease = undefined;
    if (!lease) return;
    if (mode === 'release') {
      lease.release();
      return;
    }
    await lease.revoke();
  }

  #kick(): void {
    if (this.#running || this.#stopped) return;
    this.#running = true;
    void this.#loop().finally(() => {
      this.#running = false;
    });
  }

  #needsWrite(): boolean {
    return this.#wantedSeq > 0 && (this.#lease === undefined || this.#writtenSeq < this.#wantedSeq);
  }

  async #loop(): Promise<void> {
    let backoffMs = LEASED_RETRY_INITIAL_MS;
    while (!this.#stopped && this.#needsWrite()) {
      const seq = this.#wantedSeq;
      try {
        let lease = this.#lease;
        if (lease === undefined) {
          lease = await this.#opts.store.grantLease(this.#opts.ttlMs);
          if (this.#stopped) {
            // stop() ran while the grant was in flight: the new lease is ours to end.
            if (this.#stopped === 'revoke') await lease.revoke().catch(() => undefined);
            else lease.release();
            return;
          }
          this.#lease = lease;
          const granted = lease;
          lease.onLost((err) => this.#onLost(granted, err));
        }
        await this.#opts.store.put(this.key, this.#opts.render(), { lease });
        if (this.#stopped) return;
        this.#writtenSeq = seq;
        this.#lastError = undefined;
        backoffMs = LEASED_RETRY_INITIAL_MS;
        for (const w of this.#waiters.filter((x) => x.seq <= seq)) w.resolve();
        this.#waiters = this.#waiters.filter((x) => x.seq > seq);
        if (this.#lostAt !== undefined) {
          this.#opts.logger.info(
            { key: this.key, downMs: Date.now() - this.#lostAt },
            'leased record re-written after lease loss',
          );
          this.#lostAt = undefined;
          this.#safe(() => this.#opts.onRecovered?.());
        }
      } catch (err) {
        if (this.#stopped) return;
        const error = err instanceof Error ? err : new Error(String(err));
        this.#lastError = error;
        if (SwitchyardError.is(err) && err.code === ErrorCode.CLOSED) {
          for (const w of this.#waiters.splice(0)) w.reject(error);
          return;
        }
        if (SwitchyardError.is(err) && err.code === ErrorCode.LEASE_LOST) {
          // The put found the lease gone before its keep-alive did.
          const lease = this.#lease;
          if (lease) this.#onLost(lease, error);
        }
        if (!(SwitchyardError.is(err) && err.retryable)) {
          // Not a blip (e.g. permission denied): tell whoever waits, but keep trying slowly in
          // case the operator fixes it; the record must come back when it can.
          for (const w of this.#waiters.splice(0)) w.reject(error);
          this.#opts.logger.error({ key: this.key, err: describeError(err) }, 'leased record write failed');
        } else {
          this.#opts.logger.debug(
            { key: this.key, err: describeError(err), backoffMs },
            'leased record write failed',
          );
        }
        await this.#pause(backoffMs * (0.8 + Math.random() * 0.2));
        backoffMs = Math.min(LEASED_RETRY_MAX_MS, backoffMs * 2);
      }
    }
  }

  #onLost(lease: Lease, err: Error): void {
    if (lease !== this.#lease || this.#stopped) return;
    this.#lease = undefined;
    if (this.#lostAt === undefined) {
      this.#lostAt = Date.now();
      this.#opts.countLoss?.();
      this.#opts.logger.warn(
        { key: this.key, err: describeError(err) },
        'lease lost; re-granting and re-writing',
      );
      this.#safe(() => this.#opts.onLost?.(err));
    }
    this.#kick();
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#sleep = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleep = { timer, wake };
    });
  }

  #wakeUp(): void {
    this.#sleep?.wake();
  }

  #safe(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#opts.logger.error({ key: this.key, err: describeError(err) }, 'leased record callback threw');
    }
  }
}

function closedError(key: string): SwitchyardError {
  return new SwitchyardError(ErrorCode.CLOSED, `leased record ${key} stopped`);
}

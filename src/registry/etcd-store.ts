import {
  type CallContext,
  ClientClosedError,
  Etcd3,
  EtcdError,
  type Lease as EtcdLeaseHandle,
  EtcdLeaseInvalidError,
  GRPCDeadlineExceededError,
  GRPCInvalidArgumentError,
  GRPCOutOfRangeError,
  type IOptions,
  type IWatchResponse,
  isRecoverableError,
  type Watcher,
} from 'etcd3';
import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { KvEntry, KvEvent, KvListing, KvStore, Lease, Watch, WatchHandlers } from './store.ts';

/**
 * KvStore on etcd v3 through the `etcd3` client (research/libraries-and-style.md §2.1). Only this
 * file imports etcd3, so the client can be swapped for etcd's JSON gateway if it ever breaks.
 *
 * Resilience choices, each fixing a behaviour measured in research/real-components.md §3:
 * - Every unary call carries a deadline; without one a call to a dead member hangs ~7 s.
 * - Lease keep-alives run on our own timer (see EtcdLease: etcd3's can leak an interval).
 * - A failed call is retried on another member only if it failed fast (within half its budget),
 *   so a call returns within `callTimeoutMs`, or 1.5 x `callTimeoutMs` at worst.
 * - A member that fails 3 calls in a row is skipped for 1 s (etcd3's default breaker skips it for
 *   5 s, which with a single endpoint delays recovery after every blip by up to 5 s).
 * - Watches reconnect with a backoff capped at 1 s (etcd3's default grows to 30 s) and resume from
 *   the last revision *delivered*, not the last header seen (see `watch`).
 */

export interface EtcdStoreOptions {
  /** Client URLs, e.g. ['http://127.0.0.1:2379']. */
  endpoints: string[];
  /** Deadline of every call; default 1000 ms. */
  callTimeoutMs?: number;
  /** Longest wait between reconnect attempts to a member; default 2000 ms. */
  dialTimeoutMs?: number;
  logger: Logger;
}

/** A KvStore on etcd, plus compaction (operators and tests). */
export interface EtcdStore extends KvStore {
  readonly kind: 'etcd';
  compact(revision: number): Promise<void>;
}

/** Deadline of every etcd call unless the caller sets `callTimeoutMs`. */
export const DEFAULT_CALL_TIMEOUT_MS = 1000;
/** Longest wait between gRPC reconnect attempts to a member. */
export const DEFAULT_DIAL_TIMEOUT_MS = 2000;
/** etcd leases are whole seconds; etcd itself raises tiny TTLs to its minimum (2 s by default). */
const MIN_LEASE_TTL_S = 1;
const BREAKER_FAILURES = 3;
const BREAKER_OPEN_MS = 1000;
const WATCH_BACKOFF_INITIAL_MS = 50;
const WATCH_BACKOFF_MAX_MS = 1000;
const MAX_RECEIVE_BYTES = 64 * 1024 * 1024;
/** etcd rejects client pings more often than every 5 s (--grpc-keepalive-min-time). */
const GRPC_KEEPALIVE_MS = 10_000;

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type Policy = NonNullable<FaultHandling['global']>;
type Backoff = NonNullable<FaultHandling['watchBackoff']>;

/** Thrown by the host breaker when a member is being skipped; etcd3 then tries the next one. */
class MemberSkippedError extends Error {
  constructor() {
    super('etcd member skipped after repeated failures');
    this.name = 'MemberSkippedError';
  }
}

const neverAborted = new AbortController().signal;

/**
 * Per-member breaker: after BREAKER_FAILURES consecutive recoverable failures the member is
 * skipped for BREAKER_OPEN_MS, then one call probes it. etcd3 only calls `execute`.
 */
function memberBreaker(): Policy {
  let failures = 0;
  let openUntil = 0;
  let probing = false;
  const policy = {
    async execute<T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      const now = Date.now();
      let isProbe = false;
      if (failures >= BREAKER_FAILURES) {
        if (now < openUntil || probing) throw new MemberSkippedError();
        probing = true;
        isProbe = true;
      }
      try {
        const value = await fn({ signal: neverAborted });
        failures = 0;
        return value;
      } catch (err) {
        if (err instanceof Error && isRecoverableError(err)) {
          failures++;
          if (failures >= BREAKER_FAILURES) openUntil = Date.now() + BREAKER_OPEN_MS;
        } else {
          failures = 0;
        }
        throw err;
      } finally {
        if (isProbe) probing = false;
      }
    },
  };
  return policy as unknown as Policy;
}

/**
 * Global policy: retry a recoverable failure on the next member (etcd3 rotates hosts per attempt).
 * Each attempt gets its own deadline from `defaultCallOptions`; a retry starts only while less
 * than half the budget is spent (a refused connection, a member without leader), never after an
 * attempt ran into its deadline.
 */
function retryWithinBudget(maxAttempts: number, budgetMs: number): Policy {
  const policy = {
    async execute<T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      const start = Date.now();
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn({ signal: neverAborted });
        } catch (err) {
          const recoverable = err instanceof Error && isRecoverableError(err);
          if (!recoverable || attempt >= maxAttempts || Date.now() - start >= budgetMs / 2) throw err;
        }
      }
    },
  };
  return policy as unknown as Policy;
}

/** Exponential backoff for watch reconnects, capped low: a watch must resume quickly. */
function watchBackoff(delayMs = 0): Backoff {
  const backoff = {
    duration: delayMs,
    next(): Backoff {
      return watchBackoff(Math.min(WATCH_BACKOFF_MAX_MS, Math.max(WATCH_BACKOFF_INITIAL_MS, delayMs * 2)));
    },
  };
  return backoff as unknown as Backoff;
}

/** Maps anything etcd3 throws to a SwitchyardError; `retryable` says whether a retry can help. */
export function mapEtcdError(err: unknown, op: string, key?: string): SwitchyardError {
  if (SwitchyardError.is(err)) return err;
  const details = key === undefined ? { op } : { op, key };
  const what = `etcd ${op}${key === undefined ? '' : ` ${key}`}`;
  if (err instanceof GRPCDeadlineExceededError) {
    return new SwitchyardError(ErrorCode.REGISTRY_TIMEOUT, `${what}: deadline exceeded`, {
      retryable: true,
      cause: err,
      details,
    });
  }
  if (err instanceof EtcdLeaseInvalidError) {
    return new SwitchyardError(ErrorCode.LEASE_LOST, `${what}: lease not found (expired or revoked)`, {
      retryable: true,
      cause: err,
      details,
    });
  }
  if (err instanceof ClientClosedError) {
    return new SwitchyardError(ErrorCode.CLOSED, `${what}: store closed`, { cause: err, details });
  }
  if (err instanceof GRPCOutOfRangeError && err.message.includes('compacted')) {
    // Retryable in the sense of docs/reference/errors.md: re-reading the whole view helps.
    return new SwitchyardError(ErrorCode.REGISTRY_COMPACTED, `${what}: revision compacted`, {
      retryable: true,
      cause: err,
      details,
    });
  }
  if (err instanceof GRPCInvalidArgumentError) {
    return new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `${what}: ${describeError(err)}`, {
      cause: err,
      details,
    });
  }
  // Unavailable, cancelled, reset connections, a skipped member, and etcd's transient server
  // errors ("etcdserver: no leader", "leader changed", "request timed out") all pass with time.
  const transient =
    err instanceof MemberSkippedError ||
    (err instanceof Error && isRecoverableError(err)) ||
    (err instanceof EtcdError && !/permission denied|auth/i.test(err.message));
  return new SwitchyardError(ErrorCode.REGISTRY_UNAVAILABLE, `${what}: ${describeError(err)}`, {
    retryable: transient,
    cause: err,
    details,
  });
}

function toNumber(value: string | number | undefined): number {
  const n = Number(value ?? 0);
  return Number.isFinite(n) ? n : 0;
}

/**
 * A lease held by this process. Keep-alives are ours, not etcd3's `autoKeepAlive`: etcd3 1.1.2
 * can start a second keep-alive loop when the old stream errors twice (e.g. across a partition),
 * and the first loop's interval is then never cleared: it outlives release, revoke and close and
 * keeps the process alive. Here one timer drives `keepaliveOnce` (a short stream call under a
 * deadline) every TTL/3, like the Go client.
 */
class EtcdLease implements Lease {
  readonly id: string;
  readonly ttlMs: number;
  readonly handle: EtcdLeaseHandle;
  #lostHandlers: ((err: Error) => void)[] = [];
  #lostError: Error | undefined;
  #finished = false;
  #timer: NodeJS.Timeout | undefined;
  #lastKeepAliveAt = Date.now();
  #callTimeoutMs: number;
  #onFinish: (lease: EtcdLease) => void;
  #logger: Logger;

  constructor(
    id: string,
    ttlMs: number,
    handle: EtcdLeaseHandle,
    callTimeoutMs: number,
    logger: Logger,
    onFinish: (l: EtcdLease) => void,
  ) {
    this.id = id;
    this.ttlMs = ttlMs;
    this.handle = handle;
    this.#callTimeoutMs = callTimeoutMs;
    this.#logger = logger;
    this.#onFinish = onFinish;
    // etcd3 emits 'lost' when a keep-alive answer says the lease is gone (TTL 0).
    handle.on('lost', (err: Error) => this.markLost(err));
    this.#schedule();
  }

  #schedule(): void {
    if (this.#finished) return;
    this.#timer = setTimeout(() => void this.#keepAlive(), Math.max(1, Math.floor(this.ttlMs / 3)));
  }

  async #keepAlive(): Promise<void> {
    if (this.#finished) return;
    const deadline = Date.now() + Math.min(this.#callTimeoutMs, Math.max(100, Math.floor(this.ttlMs / 3)));
    try {
      await this.handle.keepaliveOnce({ deadline });
      this.#lastKeepAliveAt = Date.now();
    } catch (err) {
      if (err instanceof EtcdLeaseInvalidError) {
        this.markLost(err);
        return;
      }
      const silentMs = Date.now() - this.#lastKeepAliveAt;
      this.#logger.debug(
        { leaseId: this.id, err: describeError(err), silentMs },
        'etcd lease keep-alive failed',
      );
      if (silentMs > this.ttlMs) {
        // etcd has expired it by now (its TTL runs on the server whatever we do): report the
        // loss now rather than when etcd is reachable again, so the owner starts re-granting.
        this.markLost(new Error(`no keep-alive answered for ${silentMs} ms (TTL ${this.ttlMs} ms)`));
        return;
      }
    }
    this.#schedule();
  }

  onLost(handler: (err: Error) => void): void {
    if (this.#lostError !== undefined) {
      const err = this.#lostError;
      queueMicrotask(() => handler(err));
      return;
    }
    this.#lostHandlers.push(handler);
  }

  /** Fires the lost handlers once; ignored after our own revoke/release. */
  markLost(err: unknown): void {
    if (this.#lostError !== undefined || this.#finished) return;
    const lost = new SwitchyardError(
      ErrorCode.LEASE_LOST,
      `etcd lease ${this.id} lost: ${describeError(err)}`,
      {
        retryable: true,
        cause: err,
      },
    );
    this.#lostError = lost;
    this.#finish();
    this.handle.release();
    for (const h of this.#lostHandlers.splice(0)) {
      try {
        h(lost);
      } catch (hErr) {
        this.#logger.error({ err: describeError(hErr) }, 'lease onLost handler threw');
      }
    }
  }

  async revoke(): Promise<void> {
    this.#finish();
    try {
      await this.handle.revoke();
    } catch (err) {
      throw mapEtcdError(err, 'lease revoke');
    }
  }

  release(): void {
    this.#finish();
    this.handle.release();
  }

  get finished(): boolean {
    return this.#finished;
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#timer);
    this.#onFinish(this);
  }
}

/**
 * Creates the etcd store. It does not wait for etcd: the first call fails (retryable) if no member
 * answers, so a role can start fail-static while the registry is away.
 */
export async function createEtcdStore(opts: EtcdStoreOptions): Promise<EtcdStore> {
  if (opts.endpoints.length === 0) {
    throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, 'etcd store needs at least one endpoint');
  }
  const callTimeoutMs = opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const dialTimeoutMs = opts.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  const logger = opts.logger.child({ component: 'registry-etcd' });
  const client = new Etcd3({
    hosts: opts.endpoints,
    // Without a deadline a unary call to a dead member hangs ~7 s (research/real-components.md §3).
    defaultCallOptions: (c: CallContext) => (c.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    faultHandling: {
      host: () => memberBreaker(),
      global: retryWithinBudget(Math.max(2, opts.endpoints.length), callTimeoutMs),
      watchBackoff: watchBackoff(),
    },
    grpcOptions: {
      // grpc-js defaults grow to 120 s between reconnects; a registry must come back quickly.
      'grpc.initial_reconnect_backoff_ms': Math.min(100, dialTimeoutMs),
      'grpc.max_reconnect_backoff_ms': dialTimeoutMs,
      // grpc-js refuses messages over 4 MiB by default; a watch catching up sends up to 1000
      // revisions in one response (etcd's watchBatchMaxRevs), of records up to 4 KiB each.
      'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
      // Detects half-open connections under long-lived watch streams.
      'grpc.keepalive_time_ms': GRPC_KEEPALIVE_MS,
      'grpc.keepalive_timeout_ms': Math.max(1000, dialTimeoutMs),
    },
  });

  const leases = new Set<EtcdLease>();
  const watches = new Set<{ close(): Promise<void> }>();
  let closed = false;

  const ensureOpen = (op: string) => {
    if (closed) throw new SwitchyardError(ErrorCode.CLOSED, `etcd store closed (${op})`);
  };

  /** Smallest revision still readable: etcd does not report it on a cancelled watch. */
  async function findCompactRevision(prefix: string, from: number): Promise<number | undefined> {
    const readable = async (rev: number): Promise<boolean | undefined> => {
      try {
        await client.get(prefix).revision(rev).exec();
        return true;
      } catch (err) {
        // OUT_OF_RANGE is also "future revision"; only "compacted" means below the compaction.
        return err instanceof GRPCOutOfRangeError && err.message.includes('compacted') ? false : undefined;
      }
    };
    const first = await readable(from);
    if (first !== false) return undefined;
    const head = toNumber((await client.get(prefix).exec()).header.revision);
    let lo = from; // not readable
    let hi = head; // readable (the current revision always is)
    for (let i = 0; i < 64 && hi - lo > 1; i++) {
      const mid = Math.floor((lo + hi) / 2);
      const ok = await readable(mid);
      if (ok === undefined) return lo + 1;
      if (ok) hi = mid;
      else lo = mid;
    }
    return hi;
  }

  const store: EtcdStore = {
    kind: 'etcd',

    async get(key: string): Promise<KvEntry | undefined> {
      ensureOpen('get');
      try {
        const res = await client.get(key).exec();
        const kv = res.kvs[0];
        if (!kv) return undefined;
        return toEntry(kv);
      } catch (err) {
        throw mapEtcdError(err, 'get', key);
      }
    },

    async list(prefix: string): Promise<KvListing> {
      ensureOpen('list');
      try {
        const res = await client.getAll().prefix(prefix).exec();
        return { entries: res.kvs.map(toEntry), revision: toNumber(res.header.revision) };
      } catch (err) {
        throw mapEtcdError(err, 'list', prefix);
      }
    },

    async put(key: string, value: string, putOpts?: { lease?: Lease }): Promise<number> {
      ensureOpen('put');
      const lease = leaseOf(putOpts?.lease);
      try {
        const builder = client.put(key).value(value);
        if (lease) builder.lease(lease.id);
        const res = await builder.exec();
        return toNumber(res.header.revision);
      } catch (err) {
        const mapped = mapEtcdError(err, 'put', key);
        if (lease && mapped.code === ErrorCode.LEASE_LOST) lease.markLost(mapped);
        throw mapped;
      }
    },

    async putIfModRevision(key: string, value: string, expected: number): Promise<number | undefined> {
      ensureOpen('put');
      try {
        const cmp =
          expected === 0 ? client.if(key, 'Create', '==', 0) : client.if(key, 'Mod', '==', expected);
        const res = await cmp.then(client.put(key).value(value)).commit();
        return res.succeeded ? toNumber(res.header.revision) : undefined;
      } catch (err) {
        throw mapEtcdError(err, 'txn put', key);
      }
    },

    async delete(key: string): Promise<boolean> {
      ensureOpen('delete');
      try {
        const res = await client.delete().key(key).exec();
        return toNumber(res.deleted) > 0;
      } catch (err) {
        throw mapEtcdError(err, 'delete', key);
      }
    },

    async grantLease(ttlMs: number): Promise<Lease> {
      ensureOpen('grant');
      if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
        throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `lease TTL must be > 0 ms, got ${ttlMs}`);
      }
      const ttlS = Math.max(MIN_LEASE_TTL_S, Math.ceil(ttlMs / 1000));
      // autoKeepAlive off: EtcdLease drives keep-alives itself (see there why).
      const handle = client.lease(ttlS, { autoKeepAlive: false });
      // A failed grant also emits 'lost'; an EventEmitter without listener is fine for 'lost'.
      let id: string;
      try {
        id = await handle.grant();
      } catch (err) {
        handle.release();
        throw mapEtcdError(err, 'lease grant');
      }
      const lease = new EtcdLease(id, ttlS * 1000, handle, callTimeoutMs, logger, (l) => leases.delete(l));
      leases.add(lease);
      if (closed) lease.release();
      return lease;
    },

    async watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Promise<Watch> {
      ensureOpen('watch');
      if (!Number.isInteger(fromRevision) || fromRevision < 1) {
        throw new SwitchyardError(
          ErrorCode.INVALID_ARGUMENT,
          `watch fromRevision must be >= 1, got ${fromRevision}`,
        );
      }
      // `watcher()` attaches at once: listeners are in place before the first response can arrive
      // (create() only resolves a tick after 'connected', and a 'data' could slip in between).
      const watcher: Watcher = client.watch().prefix(prefix).startRevision(String(fromRevision)).watcher();
      /** Highest revision delivered to the handlers. */
      let delivered = fromRevision - 1;
      let connected = false;
      let everConnected = false;
      let ended = false;
      let closing = false;

      // etcd3 resumes from `header.revision + 1` of the last response, and already bumps it on the
      // create response, before the history it asked for has arrived: a disconnect right then
      // would skip events. Resume from what we actually delivered instead.
      const resumeFromDelivered = () => {
        watcher.request.start_revision = String(delivered + 1);
      };

      const onData = (res: IWatchResponse) => {
        if (ended || closing) return;
        const batch: KvEvent[] = [];
        const before = delivered;
        for (const ev of res.events) {
          const revision = toNumber(ev.kv.mod_revision) || toNumber(res.header.revision);
          // After a resume etcd may replay what we already have: each revision is delivered once.
          if (revision <= before) continue;
          const key = ev.kv.key.toString('utf8');
          if (ev.type === 'Put')
            batch.push({ type: 'put', key, value: ev.kv.value.toString('utf8'), revision });
          else batch.push({ type: 'delete', key, revision });
          if (revision > delivered) delivered = revision;
        }
        if (batch.length === 0) return;
        try {
          handlers.onEvents(batch);
        } catch (err) {
          logger.error({ err: describeError(err), prefix }, 'watch onEvents handler threw');
        }
      };

      const setConnected = (value: boolean) => {
        if (connected === value) return;
        connected = value;
        try {
          handlers.onConnection?.(value);
        } catch (err) {
          logger.error({ err: describeError(err) }, 'watch onConnection handler threw');
        }
      };

      const firstConnect = new Promise<void>((resolve, reject) => {
        watcher.on('connected', () => {
          resumeFromDelivered();
          if (!everConnected) {
            everConnected = true;
            connected = true;
            resolve();
            return;
          }
          logger.debug({ prefix, from: delivered + 1 }, 'etcd watch reconnected');
          setConnected(true);
        });
        watcher.on('data', onData);
        watcher.on('disconnected', (err: Error) => {
          resumeFromDelivered();
          if (!everConnected || closing) return;
          logger.debug({ prefix, err: describeError(err) }, 'etcd watch disconnected');
          setConnected(false);
        });
        // The server cancelled the watch. With a start revision below the compaction point etcd
        // answers 'created' and then cancels it (etcd3 surfaces "Watcher canceled: "; the compact
        // revision is not passed on, so we look it up). etcd3 has already detached the watcher:
        // calling cancel() now would make it choke on the reply, so we only stop listening.
        watcher.on('error', (err: Error) => {
          if (ended) return;
          ended = true;
          if (!everConnected) {
            reject(mapEtcdError(err, 'watch', prefix));
            return;
          }
          if (closing) return;
          const from = delivered + 1;
          void findCompactRevision(prefix, from)
            .catch(() => undefined)
            .then((compactRevision) => {
              if (closing) return;
              if (compactRevision === undefined) {
                logger.warn(
                  { prefix, err: describeError(err) },
                  'etcd cancelled the watch; caller must re-list',
                );
              }
              handlers.onCompacted?.(compactRevision ?? from);
            });
        });
      });

      const close = async (): Promise<void> => {
        if (closing) return;
        closing = true;
        watches.delete(handle);
        if (ended) return;
        ended = true;
        // Cancel waits for etcd's reply; never longer than one call.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          watcher.cancel().catch(() => undefined),
          new Promise<void>((r) => {
            timer = setTimeout(r, callTimeoutMs);
          }),
        ]);
        clearTimeout(timer);
      };
      const handle = { close };
      watches.add(handle);

      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new SwitchyardError(
                ErrorCode.REGISTRY_TIMEOUT,
                `etcd watch ${prefix}: not established in time`,
                {
                  retryable: true,
                },
              ),
            ),
          Math.max(callTimeoutMs, 1000),
        );
      });
      try {
        await Promise.race([firstConnect, timeout]);
      } catch (err) {
        await close();
        throw err;
      } finally {
        clearTimeout(timer);
      }
      return handle;
    },

    async ping(): Promise<void> {
      ensureOpen('ping');
      try {
        // A linearizable read: answers only with a quorum, which is what readiness means.
        await client.get('\u0000switchyard-ping').exec();
      } catch (err) {
        throw mapEtcdError(err, 'ping');
      }
    },

    async compact(revision: number): Promise<void> {
      ensureOpen('compact');
      try {
        await client.kv.compact({ revision, physical: true });
      } catch (err) {
        throw mapEtcdError(err, 'compact');
      }
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      // Stop keep-alive loops first: etcd3 would retry them forever against a closed pool.
      for (const lease of [...leases]) lease.release();
      await Promise.all([...watches].map((w) => w.close()));
      client.close();
    },
  };

  function leaseOf(lease: Lease | undefined): EtcdLease | undefined {
    if (lease === undefined) return undefined;
    if (!(lease instanceof EtcdLease)) {
      throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, 'lease was not granted by this etcd store');
    }
    if (lease.finished) {
      throw new SwitchyardError(
        ErrorCode.LEASE_LOST,
        `etcd lease ${lease.id} was released, revoked or lost`,
        {
          retryable: true,
        },
      );
    }
    return lease;
  }

  return store;
}

function toEntry(kv: { key: Buffer; value: Buffer; mod_revision: string; lease: string }): KvEntry {
  const entry: KvEntry = {
    key: kv.key.toString('utf8'),
    value: kv.value.toString('utf8'),
    modRevision: toNumber(kv.mod_revision),
  };
  if (kv.lease && kv.lease !== '0') entry.leaseId = kv.lease;
  return entry;
}

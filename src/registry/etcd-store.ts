import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import {
  createGateway,
  EtcdGatewayError,
  type Gateway,
  type GatewayStream,
  GRPC_INVALID_ARGUMENT,
  GRPC_NOT_FOUND,
  GRPC_OUT_OF_RANGE,
} from './etcd-gateway.ts';
import type { KvEntry, KvEvent, KvListing, KvStore, Lease, Watch, WatchHandlers } from './store.ts';

/**
 * KvStore on etcd v3 through its JSON gateway (etcd-gateway.ts; docs/decisions/0005 says why not
 * the `etcd3` gRPC client any more). Keys and values travel base64-encoded, 64-bit numbers as
 * decimal strings.
 *
 * Resilience choices, each fixing a behaviour measured in research/real-components.md §3:
 * - Every unary call carries a deadline and fails over to another member (etcd-gateway.ts).
 * - Lease keep-alives run on our own timer every TTL/3, like the Go client, each under a deadline.
 * - Watches reconnect with a backoff capped at `dialTimeoutMs` and resume from the last revision
 *   *delivered*. A watch that has been silent for WATCH_LIVENESS_MS pings its member, so a
 *   half-open connection is noticed within about that time plus one call deadline.
 */

export interface EtcdStoreOptions {
  /** Client URLs, e.g. ['http://127.0.0.1:2379']. */
  endpoints: string[];
  /** Deadline of every call; default 1000 ms. */
  callTimeoutMs?: number;
  /** Longest wait between reconnect attempts of a watch; default 2000 ms. */
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
/** Longest wait between watch reconnect attempts. */
export const DEFAULT_DIAL_TIMEOUT_MS = 2000;
/** etcd leases are whole seconds; etcd itself raises tiny TTLs to its minimum (2 s by default). */
const MIN_LEASE_TTL_S = 1;
const WATCH_BACKOFF_INITIAL_MS = 50;
/** A watch with no message for this long checks that its member still answers. */
const WATCH_LIVENESS_MS = 10_000;

/** Maps a gateway failure to a SwitchyardError; `retryable` says whether a retry can help. */
export function mapEtcdError(err: unknown, op: string, key?: string): SwitchyardError {
  if (SwitchyardError.is(err)) return err;
  const details = key === undefined ? { op } : { op, key };
  const what = `etcd ${op}${key === undefined ? '' : ` ${key}`}`;
  if (!(err instanceof EtcdGatewayError)) {
    return new SwitchyardError(ErrorCode.REGISTRY_UNAVAILABLE, `${what}: ${describeError(err)}`, {
      retryable: true,
      cause: err,
      details,
    });
  }
  if (err.message === 'etcd client closed') {
    return new SwitchyardError(ErrorCode.CLOSED, `${what}: store closed`, { cause: err, details });
  }
  if (err.timedOut) {
    return new SwitchyardError(ErrorCode.REGISTRY_TIMEOUT, `${what}: ${err.message}`, {
      retryable: true,
      cause: err,
      details,
    });
  }
  if (err.grpcCode === GRPC_NOT_FOUND && /lease/i.test(err.message)) {
    return new SwitchyardError(ErrorCode.LEASE_LOST, `${what}: lease not found (expired or revoked)`, {
      retryable: true,
      cause: err,
      details,
    });
  }
  if (err.grpcCode === GRPC_OUT_OF_RANGE && err.message.includes('compacted')) {
    // Retryable in the sense of docs/reference/errors.md: re-reading the whole view helps.
    return new SwitchyardError(ErrorCode.REGISTRY_COMPACTED, `${what}: revision compacted`, {
      retryable: true,
      cause: err,
      details,
    });
  }
  if (err.grpcCode === GRPC_INVALID_ARGUMENT) {
    return new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `${what}: ${err.message}`, {
      cause: err,
      details,
    });
  }
  // Refused and reset connections and etcd's transient server errors ("etcdserver: no leader",
  // "leader changed") pass with time; permission and auth failures do not.
  return new SwitchyardError(ErrorCode.REGISTRY_UNAVAILABLE, `${what}: ${err.message}`, {
    retryable: err.transient,
    cause: err,
    details,
  });
}

// ---- wire encoding ------------------------------------------------------------------------------

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined): string => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

/** etcd's range_end for "every key with this prefix": the prefix with its last byte + 1. */
function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let i = bytes.length - 1; i >= 0; i--) {
    if ((bytes[i] as number) < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i] = (end[i] as number) + 1;
      return end.toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64'); // all 0xff (or empty): to the end of the keyspace
}

function toNumber(value: string | number | undefined): number {
  const n = Number(value ?? 0);
  return Number.isFinite(n) ? n : 0;
}

interface WireKv {
  key?: string;
  value?: string;
  mod_revision?: string;
  lease?: string;
}
interface WireHeader {
  header?: { revision?: string };
}
interface WireWatchResponse extends WireHeader {
  created?: boolean;
  canceled?: boolean;
  compact_revision?: string;
  cancel_reason?: string;
  events?: Array<{ type?: 'PUT' | 'DELETE'; kv?: WireKv }>;
}

function toEntry(kv: WireKv): KvEntry {
  const entry: KvEntry = {
    key: unb64(kv.key),
    value: unb64(kv.value),
    modRevision: toNumber(kv.mod_revision),
  };
  if (kv.lease && kv.lease !== '0') entry.leaseId = kv.lease;
  return entry;
}

const revisionOf = (res: WireHeader): number => toNumber(res.header?.revision);

// ---- leases -------------------------------------------------------------------------------------

/** A lease held by this process: one timer sends a keep-alive (under a deadline) every TTL/3. */
class EtcdLease implements Lease {
  readonly id: string;
  readonly ttlMs: number;
  #gateway: Gateway;
  #lostHandlers: ((err: Error) => void)[] = [];
  #lostError: Error | undefined;
  #finished = false;
  #timer: NodeJS.Timeout | undefined;
  #expiry: NodeJS.Timeout | undefined;
  #lastKeepAliveAt = Date.now();
  #callTimeoutMs: number;
  #onFinish: (lease: EtcdLease) => void;
  #logger: Logger;

  constructor(
    id: string,
    ttlMs: number,
    gateway: Gateway,
    callTimeoutMs: number,
    logger: Logger,
    onFinish: (l: EtcdLease) => void,
  ) {
    this.id = id;
    this.ttlMs = ttlMs;
    this.#gateway = gateway;
    this.#callTimeoutMs = callTimeoutMs;
    this.#logger = logger;
    this.#onFinish = onFinish;
    this.#armExpiry();
    this.#schedule();
  }

  /**
   * Reports the loss the moment etcd must have expired the lease (a whole TTL since the last
   * answered keep-alive was sent), not when the next attempt fails: keep-alives can hang for a
   * full call deadline, and the owner should start re-granting at once.
   */
  #armExpiry(): void {
    clearTimeout(this.#expiry);
    this.#expiry = setTimeout(
      () => {
        this.markLost(new Error(`no keep-alive answered within the TTL of ${this.ttlMs} ms`));
      },
      Math.max(0, this.#lastKeepAliveAt + this.ttlMs - Date.now()),
    );
    this.#expiry.unref();
  }

  #schedule(): void {
    if (this.#finished) return;
    this.#timer = setTimeout(() => void this.#keepAlive(), Math.max(1, Math.floor(this.ttlMs / 3)));
  }

  async #keepAlive(): Promise<void> {
    if (this.#finished) return;
    const timeoutMs = Math.min(this.#callTimeoutMs, Math.max(100, Math.floor(this.ttlMs / 3)));
    // etcd restarts the TTL when it handles the request, some time after we send it: counting
    // from the send time never credits the lease with more life than it has.
    const sentAt = Date.now();
    try {
      const res = await this.#gateway.call<{ TTL?: string }>(
        '/v3/lease/keepalive',
        { ID: this.id },
        { timeoutMs },
      );
      if (this.#finished) return;
      // etcd answers a keep-alive for an unknown lease with TTL 0 (omitted in JSON).
      if (toNumber(res.TTL) <= 0) {
        this.markLost(new Error('etcd says the lease is gone (keep-alive answered TTL 0)'));
        return;
      }
      this.#lastKeepAliveAt = sentAt;
      this.#armExpiry();
    } catch (err) {
      const mapped = mapEtcdError(err, 'lease keep-alive');
      if (mapped.code === ErrorCode.LEASE_LOST) {
        this.markLost(mapped);
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
      await this.#gateway.call('/v3/lease/revoke', { ID: this.id });
    } catch (err) {
      const mapped = mapEtcdError(err, 'lease revoke');
      if (mapped.code === ErrorCode.LEASE_LOST) return; // already gone: what revoke wanted
      throw mapped;
    }
  }

  release(): void {
    this.#finish();
  }

  get finished(): boolean {
    return this.#finished;
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#expiry);
    this.#onFinish(this);
  }
}

// ---- the store ----------------------------------------------------------------------------------

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
  const gateway = createGateway({ endpoints: opts.endpoints, callTimeoutMs, logger });

  const leases = new Set<EtcdLease>();
  const watches = new Set<{ close(): Promise<void> }>();
  let closed = false;

  const ensureOpen = (op: string) => {
    if (closed) throw new SwitchyardError(ErrorCode.CLOSED, `etcd store closed (${op})`);
  };

  async function call<T>(
    op: string,
    path: string,
    body: unknown,
    key?: string,
    idempotent = true,
  ): Promise<T> {
    ensureOpen(op);
    try {
      return await gateway.call<T>(path, body, { idempotent });
    } catch (err) {
      throw mapEtcdError(err, op, key);
    }
  }

  const store: EtcdStore = {
    kind: 'etcd',

    async get(key: string): Promise<KvEntry | undefined> {
      const res = await call<{ kvs?: WireKv[] }>('get', '/v3/kv/range', { key: b64(key) }, key);
      const kv = res.kvs?.[0];
      return kv ? toEntry(kv) : undefined;
    },

    async list(prefix: string): Promise<KvListing> {
      const res = await call<WireHeader & { kvs?: WireKv[] }>(
        'list',
        '/v3/kv/range',
        { key: b64(prefix), range_end: prefixEnd(prefix) },
        prefix,
      );
      return { entries: (res.kvs ?? []).map(toEntry), revision: revisionOf(res) };
    },

    async put(key: string, value: string, putOpts?: { lease?: Lease }): Promise<number> {
      const lease = leaseOf(putOpts?.lease);
      const body: Record<string, string> = { key: b64(key), value: b64(value) };
      if (lease) body['lease'] = lease.id;
      try {
        return revisionOf(await call<WireHeader>('put', '/v3/kv/put', body, key));
      } catch (err) {
        if (lease && SwitchyardError.is(err) && err.code === ErrorCode.LEASE_LOST) lease.markLost(err);
        throw err;
      }
    },

    async putIfModRevision(key: string, value: string, expected: number): Promise<number | undefined> {
      const compare =
        expected === 0
          ? { key: b64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' }
          : { key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: String(expected) };
      const res = await call<WireHeader & { succeeded?: boolean }>(
        'txn put',
        '/v3/kv/txn',
        { compare: [compare], success: [{ request_put: { key: b64(key), value: b64(value) } }] },
        key,
        false, // applied twice, a compare-and-put would report a conflict with itself
      );
      return res.succeeded ? revisionOf(res) : undefined;
    },

    async delete(key: string): Promise<boolean> {
      const res = await call<{ deleted?: string }>('delete', '/v3/kv/deleterange', { key: b64(key) }, key);
      return toNumber(res.deleted) > 0;
    },

    async grantLease(ttlMs: number): Promise<Lease> {
      ensureOpen('grant');
      if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
        throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `lease TTL must be > 0 ms, got ${ttlMs}`);
      }
      const ttlS = Math.max(MIN_LEASE_TTL_S, Math.ceil(ttlMs / 1000));
      const res = await call<{ ID?: string; TTL?: string; error?: string }>(
        'lease grant',
        '/v3/lease/grant',
        {
          TTL: String(ttlS),
        },
        undefined,
        false, // granted twice, one lease would be left to expire unused
      );
      if (!res.ID || res.error) {
        throw new SwitchyardError(
          ErrorCode.REGISTRY_UNAVAILABLE,
          `etcd lease grant: ${res.error ?? 'no lease id'}`,
          {
            retryable: true,
          },
        );
      }
      const granted = Math.max(ttlS, toNumber(res.TTL)) * 1000;
      const lease = new EtcdLease(res.ID, granted, gateway, callTimeoutMs, logger, (l) => leases.delete(l));
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
      /** Highest revision delivered to the handlers. */
      let delivered = fromRevision - 1;
      let connected = false;
      let everConnected = false;
      let closing = false;
      let stream: GatewayStream | undefined;
      let lastMessageAt = Date.now();
      let backoffMs = 0;
      let retryTimer: NodeJS.Timeout | undefined;
      let firstOutcome: ((err?: SwitchyardError) => void) | undefined;

      const setConnected = (value: boolean) => {
        if (connected === value) return;
        connected = value;
        try {
          handlers.onConnection?.(value);
        } catch (err) {
          logger.error({ err: describeError(err) }, 'watch onConnection handler threw');
        }
      };

      const onMessage = (message: unknown) => {
        if (closing) return;
        lastMessageAt = Date.now();
        const wrapper = message as { result?: WireWatchResponse; error?: { message?: string } };
        if (wrapper.error) {
          disconnected(new EtcdGatewayError(wrapper.error.message ?? 'watch error', { transient: true }));
          return;
        }
        const res = wrapper.result ?? {};
        if (res.canceled) {
          // A start revision below the compaction point: etcd creates, then cancels the watch
          // and says where history begins. Any other cancel also means "re-list".
          const compactRevision = toNumber(res.compact_revision) || delivered + 1;
          stop();
          if (!everConnected) {
            everConnected = true;
            firstOutcome?.();
          }
          if (!res.compact_revision) {
            logger.warn(
              { prefix, reason: res.cancel_reason },
              'etcd cancelled the watch; caller must re-list',
            );
          }
          queueMicrotask(() => handlers.onCompacted?.(compactRevision));
          return;
        }
        if (res.created) {
          backoffMs = 0;
          if (!everConnected) {
            everConnected = true;
            connected = true;
            firstOutcome?.();
          } else {
            logger.debug({ prefix, from: delivered + 1 }, 'etcd watch reconnected');
            setConnected(true);
          }
        }
        const batch: KvEvent[] = [];
        const before = delivered;
        for (const ev of res.events ?? []) {
          const revision = toNumber(ev.kv?.mod_revision) || revisionOf(res);
          // After a resume etcd may replay what we already have: each revision is delivered once.
          if (revision <= before) continue;
          const key = unb64(ev.kv?.key);
          if (ev.type === 'DELETE') batch.push({ type: 'delete', key, revision });
          else batch.push({ type: 'put', key, value: unb64(ev.kv?.value), revision });
          if (revision > delivered) delivered = revision;
        }
        if (batch.length === 0) return;
        try {
          handlers.onEvents(batch);
        } catch (err) {
          logger.error({ err: describeError(err), prefix }, 'watch onEvents handler threw');
        }
      };

      const connect = () => {
        if (closing) return;
        lastMessageAt = Date.now();
        stream = gateway.stream(
          '/v3/watch',
          {
            create_request: {
              key: b64(prefix),
              range_end: prefixEnd(prefix),
              start_revision: String(delivered + 1),
            },
          },
          { onMessage, onEnd: disconnected },
        );
      };

      function disconnected(err: EtcdGatewayError): void {
        stream?.cancel();
        stream = undefined;
        if (closing) return;
        if (everConnected) {
          logger.debug({ prefix, err: err.message }, 'etcd watch disconnected');
          setConnected(false);
        }
        backoffMs = Math.min(dialTimeoutMs, Math.max(WATCH_BACKOFF_INITIAL_MS, backoffMs * 2));
        clearTimeout(retryTimer);
        retryTimer = setTimeout(connect, backoffMs);
      }

      // A half-open connection delivers nothing and reports nothing: ping the stream's member
      // when the watch has been silent, and reconnect elsewhere if it does not answer.
      let pinging = false;
      const liveness = setInterval(() => {
        if (closing || pinging || !stream || Date.now() - lastMessageAt < WATCH_LIVENESS_MS) return;
        const s = stream;
        pinging = true;
        gateway
          .call('/v3/kv/range', { key: b64(prefix), limit: '1', keys_only: true }, { endpoint: s.endpoint })
          .then(() => {
            if (stream === s) lastMessageAt = Date.now();
          })
          .catch((err: unknown) => {
            if (stream !== s) return;
            disconnected(
              err instanceof EtcdGatewayError ? err : new EtcdGatewayError(String(err), { transient: true }),
            );
          })
          .finally(() => {
            pinging = false;
          });
      }, 1000);
      liveness.unref();

      function stop(): void {
        closing = true;
        clearInterval(liveness);
        clearTimeout(retryTimer);
        stream?.cancel();
        stream = undefined;
        watches.delete(handle);
      }

      const handle = {
        async close(): Promise<void> {
          stop();
        },
      };
      watches.add(handle);

      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            firstOutcome?.(
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
        firstOutcome = (err) => {
          firstOutcome = undefined;
          clearTimeout(timer);
          if (err) {
            stop();
            reject(err);
          } else resolve();
        };
        connect();
      });
      return handle;
    },

    async ping(): Promise<void> {
      // A linearizable read: answers only with a quorum, which is what readiness means.
      await call('ping', '/v3/kv/range', { key: b64('\u0000switchyard-ping') });
    },

    async compact(revision: number): Promise<void> {
      await call('compact', '/v3/kv/compaction', { revision: String(revision), physical: true });
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const lease of [...leases]) lease.release();
      await Promise.all([...watches].map((w) => w.close()));
      gateway.close();
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

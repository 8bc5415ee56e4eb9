/**
 * The low-level contract both registry backends implement: a key-value store with revisions,
 * leases and prefix watches, i.e. the subset of etcd v3 that switchyard needs. The embedded
 * (node:sqlite) backend emulates exactly these semantics so that one conformance suite
 * (test/integration/registry-conformance.test.ts) runs against both.
 *
 * Every call carries a deadline (`callTimeoutMs` in the backend options) and rejects with a
 * retryable SwitchyardError (SY_ERR_REGISTRY_UNAVAILABLE or SY_ERR_REGISTRY_TIMEOUT) when the
 * store cannot be reached in time.
 */

export interface KvEntry {
  key: string;
  value: string;
  /** Revision at which this key was last modified. */
  modRevision: number;
  /** Lease the key is attached to, or undefined for a key without lease. */
  leaseId?: string;
}

export type KvEvent =
  | { type: 'put'; key: string; value: string; revision: number }
  | { type: 'delete'; key: string; revision: number };

export interface KvListing {
  entries: KvEntry[];
  /** Store revision the listing was read at; watch from revision + 1 to miss nothing. */
  revision: number;
}

/** A lease kept alive automatically until released, revoked or lost. */
export interface Lease {
  readonly id: string;
  readonly ttlMs: number;
  /**
   * Called once if the lease is lost: it expired on the server (keep-alives could not reach the
   * store in time) or was revoked by someone else. Keys attached to it are gone or going.
   * The owner re-grants and re-puts (see Registry.announce).
   */
  onLost(handler: (err: Error) => void): void;
  /** Revoke now: attached keys are deleted at once. */
  revoke(): Promise<void>;
  /** Stop keep-alives without revoking: attached keys expire after the TTL. */
  release(): void;
}

export interface WatchHandlers {
  /** Events in revision order, batched as the store delivers them. */
  onEvents(events: KvEvent[]): void;
  /**
   * The watch cannot resume from the requested revision (history compacted). The caller must
   * re-list and start a new watch. The watch is closed when this is called.
   */
  onCompacted?(compactRevision: number): void;
  /** Connection state changes: false while the store is unreachable, true when events flow again. */
  onConnection?(connected: boolean): void;
}

export interface Watch {
  close(): Promise<void>;
}

export interface KvStore {
  /** 'etcd' or 'embedded', for logs and status. */
  readonly kind: 'etcd' | 'embedded';
  get(key: string): Promise<KvEntry | undefined>;
  list(prefix: string): Promise<KvListing>;
  /** Returns the revision of the write. */
  put(key: string, value: string, opts?: { lease?: Lease }): Promise<number>;
  /**
   * Compare-and-put, for read-modify-write without lost updates (operator intents): writes
   * `value` (without lease) only if the key's modRevision still equals `expectedModRevision`
   * (0: only if the key does not exist). Returns the revision of the write, or undefined when the
   * key changed meanwhile. Optional so that test fakes need not implement it; both backends do.
   */
  putIfModRevision?(key: string, value: string, expectedModRevision: number): Promise<number | undefined>;
  /** Returns true when a key was deleted. */
  delete(key: string): Promise<boolean>;
  grantLease(ttlMs: number): Promise<Lease>;
  /**
   * Watch every key under `prefix`, delivering every event with revision >= fromRevision, in
   * order, none missed across disconnects (the backend resumes from the last revision seen).
   */
  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Promise<Watch>;
  /** A cheap round trip to check the store answers (for /readyz). */
  ping(): Promise<void>;
  /**
   * Drops history below `revision` (etcd compaction; the embedded store trims its event log).
   * Watches that would resume below it get onCompacted. Optional (operators and tests).
   */
  compact?(revision: number): Promise<void>;
  close(): Promise<void>;
}

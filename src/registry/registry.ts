import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { Counter, METRIC_PREFIX, type Registry as MetricsRegistry } from '../core/metrics.ts';
import { type DecodedEntry, decodeEntry, shadowedStaticReason } from './decode.ts';
import { DEFAULT_PREFIX, KeyKind, keyFor, prefixFor } from './keys.ts';
import { LEASED_RETRY_INITIAL_MS, LEASED_RETRY_MAX_MS, LeasedRecord } from './leased-record.ts';
import {
  type DispatcherStatus,
  decodeDispatcherStatus,
  decodeIntent,
  decodeNodeRecord,
  dispatcherStatusSchema,
  type Intent,
  intentSchema,
  NODE_ID_PATTERN,
  type NodeRecord,
  type NodeRecordInput,
  nodeRecordSchema,
  type StaticNode,
  type StaticNodeInput,
  staticNodeSchema,
} from './records.ts';
import type { KvEvent, KvStore, Watch } from './store.ts';
import type { RegistryView } from './view.ts';

/** Default TTLs (docs/reference/registry.md): an agent's record, a dispatcher's status. */
export const DEFAULT_NODE_TTL_MS = 3000;
export const DEFAULT_DISPATCHER_STATUS_TTL_MS = 10_000;

/** Prefix rule shared with the config schemas: absolute, no trailing slash. */
export const REGISTRY_PREFIX_PATTERN = /^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/;

export interface RegistryOptions {
  /** Key prefix; default '/switchyard'. */
  prefix?: string;
  logger: Logger;
  /** Where the registry's counters are registered; none when omitted. */
  metrics?: MetricsRegistry;
  /** Clock for updatedAt/addedAt stamps (ms since epoch); tests inject one. */
  now?: () => number;
}

/** A node's record as its agent announces it; updatedAt is stamped by the registry. */
export type AnnounceInput = Omit<NodeRecordInput, 'updatedAt'> & { updatedAt?: string };
/** A static node as the operator adds it; addedAt defaults to now. */
export type StaticNodePut = Omit<StaticNodeInput, 'addedAt'> & { addedAt?: string };

export interface IntentPatch {
  drain?: boolean;
  disable?: boolean;
  /** A weight override (1-100); null clears it. */
  weight?: number | null;
  by?: string;
  reason?: string;
}

export interface AnnounceOptions {
  /** Lease TTL; DEFAULT_NODE_TTL_MS for agents. etcd rounds up to whole seconds (minimum 2 s). */
  ttlMs: number;
  /** Gives up the first write (announce rejects with the abort reason). */
  signal?: AbortSignal;
  /** The lease was lost; the announcement is re-writing the record (logged once per loss). */
  onLost?: (err: Error) => void;
  /** The record is back after a loss. */
  onRecovered?: () => void;
}

/**
 * A node record kept in the registry under a lease. Never dropped for good: a lost lease is
 * re-granted and the latest record re-put, with backoff (100 ms doubling to 5 s), until it works.
 */
export interface Announcement {
  readonly id: string;
  readonly key: string;
  /** The record as last requested (what the registry holds once written). */
  current(): NodeRecord;
  /**
   * Merges `patch` into the record (validated; throws SY_ERR_INVALID_ARGUMENT) and writes it.
   * Resolves once this record or a later one is in the registry, however long a registry outage
   * lasts; rejects with SY_ERR_CLOSED if the announcement is withdrawn or released first.
   */
  update(patch: Partial<AnnounceInput>): Promise<void>;
  /** Revokes the lease: the key is gone now. */
  withdraw(): Promise<void>;
  /** Stops keep-alives without revoking: the key expires after the TTL. */
  release(): void;
}

export interface DispatcherStatusPublisher {
  /** Coalesced, latest wins; written under the lease, re-granted on loss. Validated (throws). */
  update(status: DispatcherStatus): void;
  /** Revokes the lease: the status is gone now. */
  close(): Promise<void>;
}

export interface ViewWatch {
  close(): Promise<void>;
  /** The latest view (the snapshot until the first change). */
  current(): RegistryView;
}

export interface WatchViewOptions {
  /**
   * false while the registry is unreachable (the view is kept as it was: fail-static is the
   * caller's call), true again once changes flow.
   */
  onConnection?: (connected: boolean) => void;
}

export interface Registry {
  readonly prefix: string;
  readonly store: KvStore;
  /** One atomic list, decoded; undecodable keys land in `rejected`. */
  snapshot(): Promise<RegistryView>;
  /**
   * Snapshot, then follow changes: `onChange` gets a new immutable view after each batch of
   * events is applied as a whole (never a partial state). It is not called for the initial
   * snapshot: read `current()`. On compaction the view is rebuilt from a fresh snapshot.
   * Rejects (retryable) if the registry cannot be read at the start.
   */
  watchView(onChange: (view: RegistryView) => void, opts?: WatchViewOptions): Promise<ViewWatch>;
  /** Writes `record` under a lease and keeps it there. Resolves after the first write. */
  announce(record: AnnounceInput, opts: AnnounceOptions): Promise<Announcement>;
  putStatic(node: StaticNodePut): Promise<StaticNode>;
  removeStatic(id: string): Promise<boolean>;
  getIntent(id: string): Promise<Intent | undefined>;
  /** Read-modify-write (compare-and-put when the store can) that keeps the fields not in `patch`. */
  setIntent(id: string, patch: IntentPatch): Promise<Intent>;
  clearIntent(id: string): Promise<boolean>;
  publishDispatcherStatus(opts: { ttlMs: number }): DispatcherStatusPublisher;
  /** Stops what this registry created: view watches, announcements (released: they expire after
   * their TTL), status publishers (revoked). Not the store. */
  close(): Promise<void>;
}

const INTENT_CAS_ATTEMPTS = 10;

function invalid(message: string, details?: unknown): SwitchyardError {
  return new SwitchyardError(ErrorCode.INVALID_ARGUMENT, message, { details });
}

function checkId(id: string, what: string): void {
  if (typeof id !== 'string' || !NODE_ID_PATTERN.test(id)) {
    throw invalid(
      `${what} id ${JSON.stringify(id)} must be 1-63 chars of [A-Za-z0-9._-] starting alphanumeric`,
    );
  }
}

function zodIssues(error: { issues: { path: PropertyKey[]; message: string }[] }): string {
  return error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ');
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Creates the registry facade over a store (etcd or embedded). */
export function createRegistry(store: KvStore, opts: RegistryOptions): Registry {
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  if (!REGISTRY_PREFIX_PATTERN.test(prefix)) {
    throw invalid(`registry prefix ${JSON.stringify(prefix)} must be absolute, without trailing slash`);
  }
  const logger = opts.logger.child({ component: 'registry', prefix });
  const now = opts.now ?? Date.now;
  const isoNow = () => new Date(now()).toISOString();
  const watchPrefix = prefixFor(prefix);

  const registers = opts.metrics ? [opts.metrics] : [];
  const rejectedTotal = counter(
    opts.metrics,
    `${METRIC_PREFIX}registry_rejected_records_total`,
    'Registry records rejected (undecodable, id mismatch, shadowed static node), by key kind',
    ['kind'],
    registers,
  );
  const leaseLostTotal = counter(
    opts.metrics,
    `${METRIC_PREFIX}registry_lease_lost_total`,
    'Leases lost by this process (records re-written afterwards), by record kind',
    ['kind'],
    registers,
  );

  /** Last decode per key, so that unchanged values are not decoded (or counted) again. */
  const decoded = new Map<string, { value: string; entry: DecodedEntry | undefined }>();
  /** Last reason logged per rejected key: one warn line per key per distinct reason. */
  const loggedReasons = new Map<string, string>();

  function decodeCached(key: string, value: string): DecodedEntry | undefined {
    const hit = decoded.get(key);
    if (hit && hit.value === value) return hit.entry;
    const entry = decodeEntry(prefix, key, value);
    decoded.set(key, { value, entry });
    if (entry && !entry.ok) rejectedTotal.inc({ kind: entry.kind });
    return entry;
  }

  function noteRejections(rejected: Map<string, string>, conflicts: Set<string>): void {
    for (const [key, reason] of rejected) {
      if (loggedReasons.get(key) === reason) continue;
      loggedReasons.set(key, reason);
      if (conflicts.has(key)) rejectedTotal.inc({ kind: KeyKind.static });
      logger.warn({ key, reason }, 'registry record rejected');
    }
    for (const key of [...loggedReasons.keys()]) if (!rejected.has(key)) loggedReasons.delete(key);
  }

  /** Builds an immutable view from raw key-values; the one place the view rules live. */
  function buildView(revision: number, raw: ReadonlyMap<string, string>): RegistryView {
    const nodes = new Map<string, NodeRecord>();
    const statics = new Map<string, StaticNode>();
    const intents = new Map<string, Intent>();
    const dispatchers = new Map<string, DispatcherStatus>();
    const rejected = new Map<string, string>();
    const conflicts = new Set<string>();
    for (const [key, value] of raw) {
      const e = decodeCached(key, value);
      if (e === undefined) continue;
      if (!e.ok) rejected.set(key, e.reason);
      else if (e.kind === 'nodes') nodes.set(e.id, deepFreeze(e.value));
      else if (e.kind === 'static') statics.set(e.id, deepFreeze(e.value));
      else if (e.kind === 'intents') intents.set(e.id, deepFreeze(e.value));
      else dispatchers.set(e.id, deepFreeze(e.value));
    }
    // Agent records win over static nodes with the same id: the agent knows the node is up.
    for (const id of [...statics.keys()]) {
      if (!nodes.has(id)) continue;
      statics.delete(id);
      const key = keyFor(prefix, KeyKind.static, id);
      rejected.set(key, shadowedStaticReason(id));
      conflicts.add(key);
    }
    noteRejections(rejected, conflicts);
    return Object.freeze({ revision, nodes, statics, intents, dispatchers, rejected });
  }

  async function listRaw(): Promise<{ revision: number; raw: Map<string, string> }> {
    const listing = await store.list(watchPrefix);
    const raw = new Map<string, string>();
    for (const e of listing.entries) raw.set(e.key, e.value);
    // A full listing shows which keys are gone: forget them (node ids churn with autoscaling).
    for (const key of [...decoded.keys()]) if (!raw.has(key)) decoded.delete(key);
    return { revision: listing.revision, raw };
  }

  const viewWatches = new Set<ViewWatch>();
  const announcements = new Set<AnnouncementImpl>();
  const publishers = new Set<DispatcherStatusPublisher>();
  let closed = false;

  const ensureOpen = () => {
    if (closed) throw new SwitchyardError(ErrorCode.CLOSED, 'registry closed');
  };

  // ---- announcements ------------------------------------------------------------------------

  class AnnouncementImpl implements Announcement {
    readonly id: string;
    readonly key: string;
    #record: NodeRecord;
    #writer: LeasedRecord;

    constructor(record: NodeRecord, announceOpts: AnnounceOptions) {
      this.id = record.id;
      this.key = keyFor(prefix, KeyKind.node, record.id);
      this.#record = record;
      this.#writer = new LeasedRecord({
        store,
        key: this.key,
        ttlMs: announceOpts.ttlMs,
        logger,
        render: () => JSON.stringify({ ...this.#record, updatedAt: isoNow() }),
        onLost: announceOpts.onLost,
        onRecovered: announceOpts.onRecovered,
        countLoss: () => leaseLostTotal.inc({ kind: KeyKind.node }),
      });
    }

    get writer(): LeasedRecord {
      return this.#writer;
    }

    current(): NodeRecord {
      return this.#record;
    }

    async update(patch: Partial<AnnounceInput>): Promise<void> {
      if (patch.id !== undefined && patch.id !== this.id) {
        throw invalid(`announcement ${this.id}: the id cannot change (got ${patch.id})`);
      }
      this.#record = validateNodeRecord({ ...this.#record, ...patch }, isoNow());
      await this.#writer.changed();
    }

    async withdraw(): Promise<void> {
      announcements.delete(this);
      await this.#writer.stop('revoke');
    }

    release(): void {
      announcements.delete(this);
      void this.#writer.stop('release');
    }
  }

  function validateNodeRecord(input: AnnounceInput, updatedAt: string): NodeRecord {
    const res = nodeRecordSchema.safeParse({ ...input, updatedAt });
    if (!res.success) throw invalid(`invalid node record: ${zodIssues(res.error)}`, res.error.issues);
    // What we write must decode on the read side (size limit included), or it would be rejected.
    const check = decodeNodeRecord(JSON.stringify(res.data));
    if (!check.ok) throw invalid(`invalid node record: ${check.reason}`);
    return res.data;
  }

  // ---- the facade ------------------------------------------------------------------------

  const registry: Registry = {
    prefix,
    store,

    async snapshot(): Promise<RegistryView> {
      ensureOpen();
      const { revision, raw } = await listRaw();
      return buildView(revision, raw);
    },

    async watchView(onChange, watchOpts = {}): Promise<ViewWatch> {
      ensureOpen();
      let raw: Map<string, string>;
      let view: RegistryView;
      let watch: Watch | undefined;
      let stopped = false;
      let connected = true;
      let recovering = false;

      const setConnected = (value: boolean) => {
        if (connected === value || stopped) return;
        connected = value;
        try {
          watchOpts.onConnection?.(value);
        } catch (err) {
          logger.error({ err: describeError(err) }, 'watchView onConnection handler threw');
        }
      };

      const publish = (next: RegistryView) => {
        view = next;
        if (stopped) return;
        try {
          onChange(next);
        } catch (err) {
          logger.error({ err: describeError(err) }, 'watchView onChange handler threw');
        }
      };

      const applyBatch = (events: KvEvent[]) => {
        if (stopped) return;
        let revision = view.revision;
        for (const ev of events) {
          if (ev.type === 'put') raw.set(ev.key, ev.value);
          else {
            raw.delete(ev.key);
            decoded.delete(ev.key);
          }
          if (ev.revision > revision) revision = ev.revision;
        }
        // The whole batch is applied before anyone sees it: never a partial state.
        publish(buildView(revision, raw));
      };

      const startWatch = async (fromRevision: number) => {
        watch = await store.watch(watchPrefix, fromRevision, {
          onEvents: applyBatch,
          onConnection: setConnected,
          onCompacted: (compactRevision) => {
            watch = undefined;
            if (stopped) return;
            logger.warn({ compactRevision, revision: view.revision }, 'registry watch compacted; re-reading');
            void recover();
          },
        });
        if (stopped) await watch.close();
      };

      /** Re-snapshot and re-watch until it works; the last view stays in place meanwhile. */
      const recover = async () => {
        if (recovering) return;
        recovering = true;
        let backoffMs = LEASED_RETRY_INITIAL_MS;
        try {
          while (!stopped) {
            try {
              const fresh = await listRaw();
              if (stopped) return;
              raw = fresh.raw;
              publish(buildView(fresh.revision, raw));
              await startWatch(fresh.revision + 1);
              setConnected(true);
              return;
            } catch (err) {
              logger.debug({ err: describeError(err), backoffMs }, 'registry re-read failed');
              if (SwitchyardError.is(err) && err.retryable) setConnected(false);
              await new Promise((r) => setTimeout(r, backoffMs));
              backoffMs = Math.min(LEASED_RETRY_MAX_MS, backoffMs * 2);
            }
          }
        } finally {
          recovering = false;
        }
      };

      const first = await listRaw();
      raw = first.raw;
      view = buildView(first.revision, raw);
      await startWatch(first.revision + 1);

      const handle: ViewWatch = {
        current: () => view,
        async close() {
          if (stopped) return;
          stopped = true;
          viewWatches.delete(handle);
          await watch?.close();
        },
      };
      viewWatches.add(handle);
      return handle;
    },

    async announce(record, announceOpts): Promise<Announcement> {
      ensureOpen();
      if (!Number.isFinite(announceOpts.ttlMs) || announceOpts.ttlMs <= 0) {
        throw invalid(`announce ttlMs must be > 0, got ${announceOpts.ttlMs}`);
      }
      const valid = validateNodeRecord(record, isoNow());
      for (const other of announcements) {
        if (other.id === valid.id) {
          // Two leases would fight over one key, and withdrawing one would delete the other's.
          throw invalid(`node ${valid.id} is already announced by this registry; update() it instead`);
        }
      }
      const a = new AnnouncementImpl(valid, announceOpts);
      announcements.add(a);
      const signal = announceOpts.signal;
      const first = a.writer.changed();
      try {
        if (signal === undefined) {
          await first;
        } else {
          signal.throwIfAborted();
          let onAbort: (() => void) | undefined;
          await Promise.race([
            first,
            new Promise<never>((_, reject) => {
              onAbort = () => reject(signal.reason);
              signal.addEventListener('abort', onAbort, { once: true });
            }),
          ]).finally(() => {
            if (onAbort) signal.removeEventListener('abort', onAbort);
          });
        }
      } catch (err) {
        announcements.delete(a);
        first.catch(() => undefined); // rejected by stop() below; the caller gets `err`
        await a.writer.stop('revoke').catch(() => undefined);
        throw err;
      }
      logger.info({ id: valid.id, uri: valid.uri, setId: valid.setId }, 'node announced');
      return a;
    },

    async putStatic(node): Promise<StaticNode> {
      ensureOpen();
      checkId(node.id, 'static node');
      const res = staticNodeSchema.safeParse({ ...node, addedAt: node.addedAt ?? isoNow() });
      if (!res.success) throw invalid(`invalid static node: ${zodIssues(res.error)}`, res.error.issues);
      await store.put(keyFor(prefix, KeyKind.static, res.data.id), JSON.stringify(res.data));
      return res.data;
    },

    async removeStatic(id): Promise<boolean> {
      ensureOpen();
      checkId(id, 'static node');
      return store.delete(keyFor(prefix, KeyKind.static, id));
    },

    async getIntent(id): Promise<Intent | undefined> {
      ensureOpen();
      checkId(id, 'intent');
      const entry = await store.get(keyFor(prefix, KeyKind.intent, id));
      if (!entry) return undefined;
      const r = decodeIntent(entry.value);
      if (!r.ok) {
        logger.warn({ key: entry.key, reason: r.reason }, 'registry intent undecodable; treated as absent');
        return undefined;
      }
      return r.value;
    },

    async setIntent(id, patch): Promise<Intent> {
      ensureOpen();
      checkId(id, 'intent');
      const key = keyFor(prefix, KeyKind.intent, id);
      for (let attempt = 1; attempt <= INTENT_CAS_ATTEMPTS; attempt++) {
        const entry = await store.get(key);
        const cur = entry ? decodeIntent(entry.value) : undefined;
        const base: Partial<Intent> = cur?.ok ? cur.value : {};
        const next: Record<string, unknown> = {
          drain: patch.drain ?? base.drain ?? false,
          disable: patch.disable ?? base.disable ?? false,
          by: patch.by ?? base.by ?? 'operator',
          updatedAt: isoNow(),
        };
        const weight = patch.weight === null ? undefined : (patch.weight ?? base.weight);
        if (weight !== undefined) next['weight'] = weight;
        const reason = patch.reason ?? base.reason;
        if (reason !== undefined) next['reason'] = reason;
        const res = intentSchema.safeParse(next);
        if (!res.success) throw invalid(`invalid intent: ${zodIssues(res.error)}`, res.error.issues);
        const json = JSON.stringify(res.data);
        if (store.putIfModRevision === undefined) {
          await store.put(key, json);
          return res.data;
        }
        const rev = await store.putIfModRevision(key, json, entry?.modRevision ?? 0);
        if (rev !== undefined) return res.data;
        logger.debug({ key, attempt }, 'intent changed concurrently; retrying read-modify-write');
      }
      throw new SwitchyardError(ErrorCode.REGISTRY_UNAVAILABLE, `intent ${id}: too many concurrent changes`, {
        retryable: true,
      });
    },

    async clearIntent(id): Promise<boolean> {
      ensureOpen();
      checkId(id, 'intent');
      return store.delete(keyFor(prefix, KeyKind.intent, id));
    },

    publishDispatcherStatus(pubOpts): DispatcherStatusPublisher {
      ensureOpen();
      if (!Number.isFinite(pubOpts.ttlMs) || pubOpts.ttlMs <= 0) {
        throw invalid(`dispatcher status ttlMs must be > 0, got ${pubOpts.ttlMs}`);
      }
      let latest: DispatcherStatus | undefined;
      let writer: LeasedRecord | undefined;
      const publisher: DispatcherStatusPublisher = {
        update(status) {
          const res = dispatcherStatusSchema.safeParse(status);
          if (!res.success)
            throw invalid(`invalid dispatcher status: ${zodIssues(res.error)}`, res.error.issues);
          checkId(res.data.name, 'dispatcher');
          const json = JSON.stringify(res.data);
          const check = decodeDispatcherStatus(json);
          if (!check.ok) throw invalid(`invalid dispatcher status: ${check.reason}`);
          if (latest !== undefined && latest.name !== res.data.name) {
            throw invalid(`dispatcher status name cannot change (${latest.name} -> ${res.data.name})`);
          }
          latest = res.data;
          if (writer === undefined) {
            writer = new LeasedRecord({
              store,
              key: keyFor(prefix, KeyKind.dispatcher, res.data.name),
              ttlMs: pubOpts.ttlMs,
              logger,
              render: () => JSON.stringify(latest),
              countLoss: () => leaseLostTotal.inc({ kind: KeyKind.dispatcher }),
            });
          }
          // Coalesced and retried by the writer; failures are logged there, nobody awaits.
          writer.changed().catch(() => undefined);
        },
        async close() {
          publishers.delete(publisher);
          await writer?.stop('revoke');
        },
      };
      publishers.add(publisher);
      return publisher;
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await Promise.all([...viewWatches].map((w) => w.close()));
      for (const a of [...announcements]) a.release();
      await Promise.all(
        [...publishers].map((p) =>
          p
            .close()
            .catch((err) => logger.debug({ err: describeError(err) }, 'status revoke failed on close')),
        ),
      );
    },
  };
  return registry;
}

/** A counter registered once per metrics registry (several Registry instances may share one). */
function counter(
  metrics: MetricsRegistry | undefined,
  name: string,
  help: string,
  labelNames: string[],
  registers: MetricsRegistry[],
): Counter<string> {
  const existing = metrics?.getSingleMetric(name);
  if (existing instanceof Counter) return existing as Counter<string>;
  return new Counter({ name, help, labelNames, registers });
}

import { randomUUID } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { KvEntry, KvEvent, KvListing, KvStore, Lease, Watch, WatchHandlers } from './store.ts';

/**
 * KvStore for one host on node:sqlite (research/libraries-and-style.md §2.12), emulating the etcd
 * semantics the registry relies on, so that one conformance suite covers both backends:
 *
 * - one global revision, +1 per event, never reused (a fresh file starts at 1, like etcd);
 * - an event log (`events`) trimmed to the last `historyLimit` events; watching from a trimmed
 *   revision reports onCompacted, as etcd does after compaction;
 * - leases with `expires_at`, refreshed every TTL/3 by the holder; a sweeper in *every* process
 *   that has the file open deletes expired leases and their keys (writing delete events), so a
 *   crashed holder's keys vanish even though it cannot clean up;
 * - watches poll the event log every `pollIntervalMs`.
 *
 * Several processes (the CLI, a dispatcher, `up`) open the same file: WAL mode, a busy timeout,
 * and every write in a BEGIN IMMEDIATE transaction. node:sqlite is synchronous, so one statement
 * sequence never interleaves with another inside this process.
 */

export interface EmbeddedStoreOptions {
  /** The database file; its directory is created if missing. */
  path: string;
  /** How often watches look for new events; default 20 ms. */
  pollIntervalMs?: number;
  /** Busy timeout for the file lock, i.e. the deadline of a call; default 1000 ms. */
  callTimeoutMs?: number;
  /** Events kept for watches to resume from; default 10000. */
  historyLimit?: number;
  /** How often this process looks for expired leases; default 100 ms. */
  sweepIntervalMs?: number;
  logger: Logger;
  /** Clock for lease expiry (ms since epoch); tests inject one. */
  now?: () => number;
}

/** A KvStore on a local SQLite file, plus compaction (operators and tests). */
export interface EmbeddedStore extends KvStore {
  readonly kind: 'embedded';
  /** Absolute path of the database file. */
  readonly path: string;
  /** Drops the event history below `revision`: watches from older revisions get onCompacted. */
  compact(revision: number): Promise<void>;
}

/** How often an embedded watch polls the event log. */
export const DEFAULT_POLL_INTERVAL_MS = 20;
/** Events the embedded store keeps for watches to resume from (etcd's compaction window). */
export const DEFAULT_HISTORY_LIMIT = 10_000;
const DEFAULT_CALL_TIMEOUT_MS = 1000;
const DEFAULT_SWEEP_INTERVAL_MS = 100;
/** Events read per poll; a watch that is further behind polls again at once. */
const POLL_BATCH = 1000;
const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS kv (
  key             TEXT PRIMARY KEY,
  value           TEXT NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision    INTEGER NOT NULL,
  lease_id        INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS kv_by_lease ON kv (lease_id) WHERE lease_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
  revision INTEGER PRIMARY KEY,
  type     TEXT NOT NULL CHECK (type IN ('put', 'delete')),
  key      TEXT NOT NULL,
  value    TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS leases (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  ttl_ms     INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  granted_at INTEGER NOT NULL,
  holder     TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases (expires_at);
`;

/** SQLite primary result codes that mean "busy, try again" (https://sqlite.org/rescode.html). */
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;

function sqliteCode(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'errcode' in err && typeof err.errcode === 'number') {
    return err.errcode & 0xff;
  }
  return undefined;
}

/** Prefix match that works for any UTF-8 text (substr and length count characters alike). */
const PREFIX_MATCH = 'key >= :prefix AND substr(key, 1, length(:prefix)) = :prefix';

interface Connection {
  db: DatabaseSync;
  dev: number;
  ino: number;
  statements: Map<string, StatementSync>;
}

interface LeaseHooks {
  keepAlive(lease: EmbeddedLease): void;
  revoke(lease: EmbeddedLease): void;
  finished(lease: EmbeddedLease): void;
  logger: Logger;
}

class EmbeddedLease implements Lease {
  readonly id: string;
  readonly ttlMs: number;
  readonly numericId: number;
  /** Identifies the store that granted this lease. */
  readonly hooks: LeaseHooks;
  #lostHandlers: ((err: Error) => void)[] = [];
  #lostError: Error | undefined;
  #finished = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(numericId: number, ttlMs: number, hooks: LeaseHooks) {
    this.numericId = numericId;
    this.id = String(numericId);
    this.ttlMs = ttlMs;
    this.hooks = hooks;
    // The Go client's and etcd3's interval: three chances per TTL.
    this.#timer = setInterval(() => this.hooks.keepAlive(this), Math.max(1, Math.floor(ttlMs / 3)));
  }

  get finished(): boolean {
    return this.#finished;
  }

  onLost(handler: (err: Error) => void): void {
    if (this.#lostError !== undefined) {
      const err = this.#lostError;
      queueMicrotask(() => handler(err));
      return;
    }
    this.#lostHandlers.push(handler);
  }

  markLost(reason: string): void {
    if (this.#lostError !== undefined || this.#finished) return;
    const lost = new SwitchyardError(ErrorCode.LEASE_LOST, `embedded lease ${this.id} lost: ${reason}`, {
      retryable: true,
    });
    this.#lostError = lost;
    this.finish();
    for (const h of this.#lostHandlers.splice(0)) {
      try {
        h(lost);
      } catch (err) {
        this.hooks.logger.error({ err: describeError(err) }, 'lease onLost handler threw');
      }
    }
  }

  async revoke(): Promise<void> {
    this.finish();
    this.hooks.revoke(this);
  }

  release(): void {
    this.finish();
  }

  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    clearInterval(this.#timer);
    this.hooks.finished(this);
  }
}

/**
 * Opens (lazily) the embedded store. It never fails because the file is unusable: calls then
 * reject with a retryable SY_ERR_REGISTRY_UNAVAILABLE and watches report onConnection(false),
 * until the file works again, like an etcd that is away.
 */
export async function createEmbeddedStore(opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
  const path = resolve(opts.path);
  const pollIntervalMs = opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const callTimeoutMs = opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const historyLimit = opts.historyLimit ?? DEFAULT_HISTORY_LIMIT;
  const sweepIntervalMs = opts.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
  const now = opts.now ?? Date.now;
  const logger = opts.logger.child({ component: 'registry-embedded', path });
  const holder = `${process.pid}:${randomUUID().slice(0, 8)}`;
  if (!Number.isInteger(historyLimit) || historyLimit < 1) {
    throw new SwitchyardError(
      ErrorCode.INVALID_ARGUMENT,
      `historyLimit must be a positive integer, got ${historyLimit}`,
    );
  }

  let conn: Connection | undefined;
  let closed = false;
  let unavailableLogged = false;
  const leases = new Set<EmbeddedLease>();
  const watches = new Set<{ close(): Promise<void> }>();

  function openConnection(): Connection {
    mkdirSync(dirname(path), { recursive: true });
    const db = new DatabaseSync(path);
    try {
      db.exec(`PRAGMA busy_timeout = ${Math.max(1, Math.floor(callTimeoutMs))}`);
      db.exec('PRAGMA journal_mode = WAL');
      // WAL + NORMAL: a power cut may lose the last commits but never corrupts the file; leased
      // records are re-written every TTL/3 anyway.
      db.exec('PRAGMA synchronous = NORMAL');
      db.exec('BEGIN IMMEDIATE');
      try {
        db.exec(SCHEMA);
        const ins = db.prepare('INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)');
        ins.run('schema', String(SCHEMA_VERSION));
        // etcd starts at revision 1 as well: the first write is revision 2.
        ins.run('revision', '1');
        ins.run('compact_revision', '0');
        ins.run('store_id', randomUUID());
        const schema = db.prepare("SELECT value FROM meta WHERE name = 'schema'").get() as { value: string };
        if (Number(schema.value) > SCHEMA_VERSION) {
          throw new SwitchyardError(
            ErrorCode.REGISTRY_UNAVAILABLE,
            `${path} has registry schema ${schema.value}; this switchyard knows ${SCHEMA_VERSION}`,
          );
        }
        db.exec('COMMIT');
      } catch (err) {
        rollback(db);
        throw err;
      }
      const st = statSync(path);
      return { db, dev: st.dev, ino: st.ino, statements: new Map() };
    } catch (err) {
      db.close();
      throw err;
    }
  }

  function dropConnection(): void {
    if (!conn) return;
    const c = conn;
    conn = undefined;
    try {
      c.db.close();
    } catch {
      // closing a broken handle can fail too; it is released either way
    }
  }

  /** Runs `fn` on the open connection (opening it if needed), mapping failures. */
  function withDb<T>(op: string, fn: (c: Connection) => T): T {
    if (closed) throw new SwitchyardError(ErrorCode.CLOSED, `embedded store closed (${op})`);
    try {
      if (!conn) conn = openConnection();
      const result = fn(conn);
      if (unavailableLogged) {
        unavailableLogged = false;
        logger.info('registry file usable again');
      }
      return result;
    } catch (err) {
      if (SwitchyardError.is(err)) throw err;
      const code = sqliteCode(err);
      if (code === SQLITE_BUSY || code === SQLITE_LOCKED) {
        throw new SwitchyardError(ErrorCode.REGISTRY_TIMEOUT, `embedded ${op}: registry file busy`, {
          retryable: true,
          cause: err,
          details: { op, path },
        });
      }
      if (code === undefined && !(err instanceof Error && 'code' in err)) throw err; // a bug of ours
      // I/O error, cannot open, read-only, disk full, replaced file...: reopen on the next call.
      dropConnection();
      if (!unavailableLogged) {
        unavailableLogged = true;
        logger.warn({ err: describeError(err) }, 'registry file unusable');
      }
      throw new SwitchyardError(ErrorCode.REGISTRY_UNAVAILABLE, `embedded ${op}: ${describeError(err)}`, {
        retryable: true,
        cause: err,
        details: { op, path },
      });
    }
  }

  function stmt(c: Connection, sql: string): StatementSync {
    let s = c.statements.get(sql);
    if (!s) {
      s = c.db.prepare(sql);
      c.statements.set(sql, s);
    }
    return s;
  }

  function inTx<T>(c: Connection, mode: 'IMMEDIATE' | 'DEFERRED', fn: () => T): T {
    c.db.exec(`BEGIN ${mode}`);
    try {
      const result = fn();
      c.db.exec('COMMIT');
      return result;
    } catch (err) {
      rollback(c.db);
      throw err;
    }
  }

  function metaNumber(c: Connection, name: string): number {
    const row = stmt(c, 'SELECT value FROM meta WHERE name = ?').get(name) as { value: string } | undefined;
    return Number(row?.value ?? 0);
  }

  function metaText(c: Connection, name: string): string {
    const row = stmt(c, 'SELECT value FROM meta WHERE name = ?').get(name) as { value: string } | undefined;
    return row?.value ?? '';
  }

  /** Inside a write transaction: the next revision. */
  function nextRevision(c: Connection): number {
    const row = stmt(
      c,
      "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'revision' RETURNING value",
    ).get() as { value: string };
    return Number(row.value);
  }

  /** Inside a write transaction: appends an event and trims history to `historyLimit`. */
  function appendEvent(
    c: Connection,
    rev: number,
    type: 'put' | 'delete',
    key: string,
    value: string | null,
  ) {
    stmt(c, 'INSERT INTO events (revision, type, key, value) VALUES (?, ?, ?, ?)').run(rev, type, key, value);
    const keepFrom = rev - historyLimit + 1;
    if (keepFrom > 1) raiseCompactRevision(c, keepFrom);
  }

  /** Inside a write transaction: events below `revision` are gone; watches from there fail. */
  function raiseCompactRevision(c: Connection, revision: number): void {
    const current = metaNumber(c, 'compact_revision');
    if (revision <= current) return;
    stmt(c, 'DELETE FROM events WHERE revision < ?').run(revision);
    stmt(c, "UPDATE meta SET value = ? WHERE name = 'compact_revision'").run(String(revision));
  }

  /** Inside a write transaction: deletes every key of a lease (one event each), then the lease. */
  function deleteLease(c: Connection, leaseId: number): number {
    const keys = stmt(c, 'SELECT key FROM kv WHERE lease_id = ? ORDER BY key').all(leaseId) as {
      key: string;
    }[];
    for (const { key } of keys) {
      const rev = nextRevision(c);
      stmt(c, 'DELETE FROM kv WHERE key = ?').run(key);
      appendEvent(c, rev, 'delete', key, null);
    }
    stmt(c, 'DELETE FROM leases WHERE id = ?').run(leaseId);
    return keys.length;
  }

  function leaseAlive(c: Connection, leaseId: number): boolean {
    const row = stmt(c, 'SELECT expires_at FROM leases WHERE id = ?').get(leaseId) as
      | { expires_at: number }
      | undefined;
    return row !== undefined && row.expires_at > now();
  }

  // ---- lease keep-alive and sweeping ----------------------------------------------------------

  const leaseHooks: LeaseHooks = {
    logger,
    keepAlive(lease: EmbeddedLease): void {
      if (lease.finished) return;
      let refreshed: boolean;
      try {
        refreshed = withDb('keep-alive', (c) => {
          const t = now();
          const res = stmt(c, 'UPDATE leases SET expires_at = ? WHERE id = ? AND expires_at > ?').run(
            t + lease.ttlMs,
            lease.numericId,
            t,
          );
          return res.changes > 0;
        });
      } catch (err) {
        // The file is away: keep trying. If it comes back after the TTL, the sweeper of some
        // process has removed the lease (or will), and the next attempt reports the loss.
        logger.debug({ leaseId: lease.id, err: describeError(err) }, 'lease keep-alive failed');
        return;
      }
      if (!refreshed) lease.markLost('expired or revoked in the registry file');
    },
    revoke(lease: EmbeddedLease): void {
      withDb('lease revoke', (c) => inTx(c, 'IMMEDIATE', () => deleteLease(c, lease.numericId)));
    },
    finished(lease: EmbeddedLease): void {
      leases.delete(lease);
    },
  };

  function sweep(): void {
    if (closed) return;
    try {
      withDb('sweep', (c) => {
        checkIdentity(c);
        if (!conn) return;
        const t = now();
        // A cheap read first: the write lock is taken only when something expired.
        if (stmt(c, 'SELECT 1 AS x FROM leases WHERE expires_at <= ? LIMIT 1').get(t) === undefined) return;
        const swept = inTx(c, 'IMMEDIATE', () => {
          // Re-read inside the lock: another process may have swept them a moment ago.
          const ids = stmt(c, 'SELECT id FROM leases WHERE expires_at <= ?').all(t) as { id: number }[];
          let keys = 0;
          for (const { id } of ids) keys += deleteLease(c, id);
          return { leases: ids.length, keys };
        });
        if (swept.leases > 0) logger.debug(swept, 'expired leases swept');
      });
    } catch (err) {
      logger.debug({ err: describeError(err) }, 'lease sweep failed');
    }
    // Our own leases that were swept (by anyone) are reported by their next keep-alive.
  }

  /**
   * A file that was deleted or replaced under us would keep working through the old handle
   * while other processes use the new file: split brain. Reopen when the path changes identity.
   */
  function checkIdentity(c: Connection): void {
    let st: { dev: number; ino: number };
    try {
      st = statSync(path);
    } catch {
      st = { dev: -1, ino: -1 };
    }
    if (st.dev !== c.dev || st.ino !== c.ino) {
      logger.warn('registry file was replaced or removed; reopening');
      dropConnection();
    }
  }

  const sweeper = setInterval(sweep, sweepIntervalMs);
  try {
    // Open now, so that problems are logged at start-up; if it fails, calls retry the open.
    withDb('open', () => undefined);
  } catch {
    // logged by withDb; the store stays usable and reports unavailability per call
  }

  // ---- the store ------------------------------------------------------------------------------

  function leaseOf(lease: Lease | undefined): EmbeddedLease | undefined {
    if (lease === undefined) return undefined;
    if (!(lease instanceof EmbeddedLease) || lease.hooks !== leaseHooks) {
      throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, 'lease was not granted by this embedded store');
    }
    if (lease.finished) {
      throw new SwitchyardError(
        ErrorCode.LEASE_LOST,
        `embedded lease ${lease.id} was released, revoked or lost`,
        {
          retryable: true,
        },
      );
    }
    return lease;
  }

  const store: EmbeddedStore = {
    kind: 'embedded',
    path,

    async get(key: string): Promise<KvEntry | undefined> {
      return withDb('get', (c) => {
        const row = stmt(c, 'SELECT key, value, mod_revision, lease_id FROM kv WHERE key = ?').get(key) as
          | KvRow
          | undefined;
        return row ? toEntry(row) : undefined;
      });
    },

    async list(prefix: string): Promise<KvListing> {
      return withDb('list', (c) =>
        inTx(c, 'DEFERRED', () => {
          const revision = metaNumber(c, 'revision');
          const rows = stmt(
            c,
            `SELECT key, value, mod_revision, lease_id FROM kv WHERE ${PREFIX_MATCH} ORDER BY key`,
          ).all({ prefix }) as unknown as KvRow[];
          return { entries: rows.map(toEntry), revision };
        }),
      );
    },

    async put(key: string, value: string, putOpts?: { lease?: Lease }): Promise<number> {
      const lease = leaseOf(putOpts?.lease);
      let leaseGone = false;
      const rev = withDb('put', (c) =>
        inTx(c, 'IMMEDIATE', () => {
          if (lease && !leaseAlive(c, lease.numericId)) {
            leaseGone = true;
            return 0;
          }
          return writeKey(c, key, value, lease?.numericId ?? null);
        }),
      );
      if (leaseGone && lease) {
        lease.markLost('expired or revoked in the registry file');
        throw new SwitchyardError(ErrorCode.LEASE_LOST, `embedded put ${key}: lease ${lease.id} not found`, {
          retryable: true,
          details: { op: 'put', key },
        });
      }
      return rev;
    },

    async putIfModRevision(key: string, value: string, expected: number): Promise<number | undefined> {
      return withDb('put', (c) =>
        inTx(c, 'IMMEDIATE', () => {
          const row = stmt(c, 'SELECT mod_revision FROM kv WHERE key = ?').get(key) as
            | { mod_revision: number }
            | undefined;
          if ((row?.mod_revision ?? 0) !== expected) return undefined;
          return writeKey(c, key, value, null);
        }),
      );
    },

    async delete(key: string): Promise<boolean> {
      return withDb('delete', (c) =>
        inTx(c, 'IMMEDIATE', () => {
          if (stmt(c, 'SELECT 1 AS x FROM kv WHERE key = ?').get(key) === undefined) return false;
          const rev = nextRevision(c);
          stmt(c, 'DELETE FROM kv WHERE key = ?').run(key);
          appendEvent(c, rev, 'delete', key, null);
          return true;
        }),
      );
    },

    async grantLease(ttlMs: number): Promise<Lease> {
      if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
        throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `lease TTL must be > 0 ms, got ${ttlMs}`);
      }
      const ttl = Math.ceil(ttlMs);
      const id = withDb('lease grant', (c) => {
        const t = now();
        const res = stmt(
          c,
          'INSERT INTO leases (ttl_ms, expires_at, granted_at, holder) VALUES (?, ?, ?, ?)',
        ).run(ttl, t + ttl, t, holder);
        return Number(res.lastInsertRowid);
      });
      const lease = new EmbeddedLease(id, ttl, leaseHooks);
      leases.add(lease);
      return lease;
    },

    async watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Promise<Watch> {
      if (!Number.isInteger(fromRevision) || fromRevision < 1) {
        throw new SwitchyardError(
          ErrorCode.INVALID_ARGUMENT,
          `watch fromRevision must be >= 1, got ${fromRevision}`,
        );
      }
      // Fails (retryable) when the file cannot be used right now, like an etcd watch that
      // cannot be established.
      const storeId = withDb('watch', (c) => metaText(c, 'store_id'));
      const w = new EmbeddedWatch(prefix, fromRevision, storeId, handlers);
      watches.add(w);
      w.schedule(0);
      return w;
    },

    async ping(): Promise<void> {
      withDb('ping', (c) => metaNumber(c, 'revision'));
    },

    async compact(revision: number): Promise<void> {
      withDb('compact', (c) =>
        inTx(c, 'IMMEDIATE', () => raiseCompactRevision(c, Math.min(revision, metaNumber(c, 'revision')))),
      );
    },

    async close(): Promise<void> {
      if (closed) return;
      for (const lease of [...leases]) lease.release();
      await Promise.all([...watches].map((w) => w.close()));
      closed = true;
      clearInterval(sweeper);
      dropConnection();
    },
  };

  /** Inside a write transaction: upserts a key (a put without lease detaches it, as in etcd). */
  function writeKey(c: Connection, key: string, value: string, leaseId: number | null): number {
    const rev = nextRevision(c);
    stmt(
      c,
      `INSERT INTO kv (key, value, create_revision, mod_revision, lease_id) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision,
         lease_id = excluded.lease_id`,
    ).run(key, value, rev, rev, leaseId);
    appendEvent(c, rev, 'put', key, value);
    return rev;
  }

  class EmbeddedWatch implements Watch {
    #prefix: string;
    /** Highest revision this watch has fully seen (delivered, or known not to match). */
    #seen: number;
    #storeId: string;
    #handlers: WatchHandlers;
    #timer: NodeJS.Timeout | undefined;
    #connected = true;
    #done = false;

    constructor(prefix: string, fromRevision: number, storeId: string, handlers: WatchHandlers) {
      this.#prefix = prefix;
      this.#seen = fromRevision - 1;
      this.#storeId = storeId;
      this.#handlers = handlers;
    }

    schedule(delayMs: number): void {
      if (this.#done) return;
      this.#timer = setTimeout(() => this.#poll(), delayMs);
    }

    async close(): Promise<void> {
      this.#done = true;
      clearTimeout(this.#timer);
      watches.delete(this);
    }

    #poll(): void {
      if (this.#done) return;
      type Outcome =
        | { kind: 'events'; events: KvEvent[]; more: boolean }
        | { kind: 'compacted'; compactRevision: number; reason: string };
      let outcome: Outcome;
      try {
        outcome = withDb('watch', (cc): Outcome => {
          return inTx(cc, 'DEFERRED', (): Outcome => {
            const head = metaNumber(cc, 'revision');
            const compactRevision = metaNumber(cc, 'compact_revision');
            if (metaText(cc, 'store_id') !== this.#storeId) {
              // A different file (deleted and recreated): our revisions mean nothing there.
              return { kind: 'compacted', compactRevision: head + 1, reason: 'registry file was replaced' };
            }
            if (this.#seen + 1 < compactRevision) {
              return { kind: 'compacted', compactRevision, reason: 'history trimmed' };
            }
            const rows = stmt(
              cc,
              `SELECT revision, type, key, value FROM events WHERE revision > :after AND ${PREFIX_MATCH}
               ORDER BY revision LIMIT ${POLL_BATCH}`,
            ).all({ after: this.#seen, prefix: this.#prefix }) as unknown as EventRow[];
            const events = rows.map(toEvent);
            const more = rows.length === POLL_BATCH;
            const last = rows[rows.length - 1];
            // Everything up to head has been looked at when the batch was not cut short, even
            // revisions of other prefixes: a later trim of those must not look like a gap.
            if (more && last) this.#seen = last.revision;
            else this.#seen = Math.max(this.#seen, head);
            return { kind: 'events', events, more };
          });
        });
      } catch (err) {
        if (this.#connected) {
          this.#connected = false;
          logger.debug({ err: describeError(err), prefix: this.#prefix }, 'embedded watch cannot read');
          this.#call(() => this.#handlers.onConnection?.(false));
        }
        this.schedule(pollIntervalMs);
        return;
      }
      if (!this.#connected) {
        this.#connected = true;
        this.#call(() => this.#handlers.onConnection?.(true));
      }
      if (outcome.kind === 'compacted') {
        logger.info({ prefix: this.#prefix, reason: outcome.reason }, 'embedded watch cannot resume');
        void this.close();
        this.#call(() => this.#handlers.onCompacted?.(outcome.compactRevision));
        return;
      }
      if (outcome.events.length > 0) this.#call(() => this.#handlers.onEvents(outcome.events));
      this.schedule(outcome.more ? 0 : pollIntervalMs);
    }

    #call(fn: () => void): void {
      try {
        fn();
      } catch (err) {
        logger.error({ err: describeError(err), prefix: this.#prefix }, 'watch handler threw');
      }
    }
  }

  return store;
}

interface KvRow {
  key: string;
  value: string;
  mod_revision: number;
  lease_id: number | null;
}

interface EventRow {
  revision: number;
  type: 'put' | 'delete';
  key: string;
  value: string | null;
}

function toEntry(row: KvRow): KvEntry {
  const entry: KvEntry = { key: row.key, value: row.value, modRevision: row.mod_revision };
  if (row.lease_id !== null) entry.leaseId = String(row.lease_id);
  return entry;
}

function toEvent(row: EventRow): KvEvent {
  return row.type === 'put'
    ? { type: 'put', key: row.key, value: row.value ?? '', revision: row.revision }
    : { type: 'delete', key: row.key, revision: row.revision };
}

function rollback(db: DatabaseSync): void {
  try {
    db.exec('ROLLBACK');
  } catch {
    // no transaction open (BEGIN itself failed): nothing to undo
  }
}

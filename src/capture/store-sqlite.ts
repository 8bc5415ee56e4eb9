import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';
import { type CallState, foldBatch, mergeCallStates, summarizeCall } from './call-summary.ts';
import type {
  CallQuery,
  CallSummary,
  CapturedMessage,
  CaptureStore,
  ControlEvent,
  LiveCallCount,
  LiveCallsQuery,
  RetentionPolicy,
  StoredMessage,
  StoreStats,
} from './model.ts';
import {
  buildSearch,
  CAPTURE_SCHEMA_VERSION,
  cleanPolicy,
  countLiveCalls,
  indexRowsOf,
  LIVE_CALL_INDEX,
  LIVE_CALL_PREDICATE,
  type LiveCallRow,
  liveCallIndexDdl,
  MESSAGE_COLUMNS,
  type MessageRow,
  messageFromRow,
  missingFrom,
  normalizeLiveQuery,
  normalizeQuery,
  readOnlyError,
  sanitizeBatch,
  statsFrom,
  validateBatch,
  validateRetention,
} from './store-common.ts';

/**
 * CaptureStore on one SQLite file (node:sqlite), for a single host. Target: 1,000,000 messages
 * with lookups and searches under 100 ms (p99), and 30,000 inserted messages/s on two cores.
 * Measured on the 2-core build VM with 1M messages of steady-state traffic (650 B messages,
 * 2000-message batches, calls held up to 2 min): searches p99 <= 22 ms, getCall 0.1 ms; inserts
 * ~31,000/s while the file is small, falling to ~20,000/s near 1M (24,000/s on average): every
 * batch rewrites about two 4 KiB pages per message, because answers and hang-ups update call
 * rows and index entries scattered over the file (WAL frames: ~7x the raw bytes; endpoint rows
 * 22% of that, from/to indexes 20%, call rows 20%). Bigger batches barely help.
 *
 * - capture_messages: one row per message, raw bytes as a BLOB, keyed by an integer rowid (the
 *   message id, so inserts append); indexed by (call_pk, ts_us) for messagesOf (the rowid in the
 *   index breaks ties by id) and by ts_us for the stats.
 * - capture_calls: one row per Call-ID: the CallState (call-summary.ts) as JSON plus the columns
 *   searches filter on, indexed (call_id), (first_ts), (from_user, first_ts),
 *   (to_user, first_ts), (status, first_ts). A batch reads each call it touches once, merges
 *   the batch's state into it and writes it once, so the cost is per call per batch, not per
 *   message; and an UPDATE names only columns that changed, because SQLite rewrites every index
 *   on a column that appears in SET.
 * - capture_call_endpoints (endpoint, first_ts, call_pk) and capture_correlation_keys
 *   (key, call_pk): WITHOUT ROWID tables that are their own index. first_ts is copied into the
 *   endpoint rows so an endpoint search walks them newest first and stops at `limit`. Rows are
 *   derived from the CallState, so they are added and removed by exact key and need no index by
 *   call.
 * - capture_calls_live: a partial index of the live calls (answered or ringing INVITE dialogs
 *   without a BYE) by first_ts, for liveCalls (store-common.ts, LIVE_CALL_PREDICATE). Only
 *   calls whose status or state changes pay for it: SQLite evaluates the predicate on each
 *   call-row write, and adds or removes an entry when a call starts or ends.
 * - capture_events: control events by time; capture_meta: schema version and last retention;
 *   capture_totals: calls, messages and bytes, kept by the same transactions that change them,
 *   so stats() and retention by size never scan (summing the calls table took 130 ms at 1M).
 *
 * Every write is one BEGIN IMMEDIATE transaction with prepared statements; WAL lets readers in
 * other processes (the console) read while the capture server writes. node:sqlite is
 * synchronous, so batches from one process never interleave.
 */

export interface SqliteCaptureStoreOptions {
  /** The database file; its directory is created if missing. `:memory:` for a throwaway store. */
  path: string;
  /** How long a write waits for another process's lock; default 5000 ms. */
  busyTimeoutMs?: number;
  /** Calls deleted per retention transaction (writers get the lock in between); default 500. */
  retentionChunk?: number;
  /** How often the checkpoint worker runs; default 200 ms; 0 checkpoints on the inserting thread. */
  checkpointIntervalMs?: number;
  /** Open an existing store only to read it: writes are refused with SY_ERR_INVALID_ARGUMENT. */
  readOnly?: boolean;
  /** SQLite page cache of this connection; default 64 MiB. */
  cacheMiB?: number;
}

export interface SqliteCaptureStore extends CaptureStore {
  readonly kind: 'sqlite';
  readonly path: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS capture_meta (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS capture_totals (
  shard    INTEGER PRIMARY KEY,
  calls    INTEGER NOT NULL,
  messages INTEGER NOT NULL,
  bytes    INTEGER NOT NULL
) STRICT;
INSERT OR IGNORE INTO capture_totals (shard, calls, messages, bytes) VALUES (0, 0, 0, 0);
CREATE TABLE IF NOT EXISTS capture_calls (
  pk            INTEGER PRIMARY KEY,
  call_id       TEXT NOT NULL UNIQUE,
  first_ts      INTEGER NOT NULL,
  last_ts       INTEGER NOT NULL,
  from_user     TEXT NOT NULL,
  to_user       TEXT NOT NULL,
  status        TEXT NOT NULL,
  message_count INTEGER NOT NULL,
  bytes         INTEGER NOT NULL,
  state         TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS capture_calls_by_first ON capture_calls (first_ts);
CREATE INDEX IF NOT EXISTS capture_calls_by_from_user ON capture_calls (from_user, first_ts);
CREATE INDEX IF NOT EXISTS capture_calls_by_to_user ON capture_calls (to_user, first_ts);
CREATE INDEX IF NOT EXISTS capture_calls_by_status ON capture_calls (status, first_ts);
CREATE TABLE IF NOT EXISTS capture_call_endpoints (
  endpoint TEXT NOT NULL,
  first_ts INTEGER NOT NULL,
  call_pk  INTEGER NOT NULL,
  PRIMARY KEY (endpoint, first_ts, call_pk)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS capture_correlation_keys (
  key     TEXT NOT NULL,
  call_pk INTEGER NOT NULL,
  PRIMARY KEY (key, call_pk)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS capture_messages (
  id             INTEGER PRIMARY KEY,
  call_pk        INTEGER NOT NULL,
  ts_us          INTEGER NOT NULL,
  src_ip         TEXT NOT NULL,
  src_port       INTEGER NOT NULL,
  dst_ip         TEXT NOT NULL,
  dst_port       INTEGER NOT NULL,
  transport      TEXT NOT NULL,
  capture_id     INTEGER NOT NULL,
  correlation_id TEXT,
  method         TEXT,
  status         INTEGER,
  cseq           TEXT NOT NULL,
  from_user      TEXT NOT NULL,
  to_user        TEXT NOT NULL,
  from_tag       TEXT,
  to_tag         TEXT,
  x_correlation  TEXT,
  size           INTEGER NOT NULL,
  raw            BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS capture_messages_by_call ON capture_messages (call_pk, ts_us);
CREATE INDEX IF NOT EXISTS capture_messages_by_ts ON capture_messages (ts_us);
CREATE TABLE IF NOT EXISTS capture_events (
  id      INTEGER PRIMARY KEY,
  ts_us   INTEGER NOT NULL,
  kind    TEXT NOT NULL,
  subject TEXT NOT NULL,
  detail  TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS capture_events_by_ts ON capture_events (ts_us);
${liveCallIndexDdl('sqlite')}
`;

/**
 * WAL checkpoints run on a worker thread with a connection of its own. A checkpoint copies the
 * WAL's pages into the database file and fsyncs it; done by the inserting connection
 * (wal_autocheckpoint) it cost about a third of the insert rate here (measured with
 * 1000-message batches on two cores: ~19,000 against ~31,000 messages/s). PASSIVE never blocks
 * the writer or readers (https://sqlite.org/c3ref/wal_checkpoint_v2.html).
 */
const CHECKPOINT_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { DatabaseSync } = require('node:sqlite');
const db = new DatabaseSync(workerData.path);
db.exec('PRAGMA synchronous = NORMAL');
const timer = setInterval(() => {
  try { db.exec('PRAGMA wal_checkpoint(PASSIVE)'); } catch { /* busy: next time */ }
}, workerData.intervalMs);
parentPort.once('message', () => { clearInterval(timer); db.close(); parentPort.close(); });
`;

const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;

function sqliteCode(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'errcode' in err && typeof err.errcode === 'number') {
    return err.errcode & 0xff;
  }
  return undefined;
}

interface CallRow {
  pk: number;
  first_ts: number;
  from_user: string;
  to_user: string;
  status: string;
  state: string;
}

export async function createSqliteCaptureStore(opts: SqliteCaptureStoreOptions): Promise<SqliteCaptureStore> {
  const memory = opts.path === ':memory:';
  const path = memory ? opts.path : resolve(opts.path);
  const busyTimeoutMs = opts.busyTimeoutMs ?? 5000;
  const retentionChunk = opts.retentionChunk ?? 500;
  const readOnly = opts.readOnly ?? false;
  const cacheMiB = opts.cacheMiB ?? 512;
  const checkpointIntervalMs = readOnly ? 0 : (opts.checkpointIntervalMs ?? 200);

  let db: DatabaseSync;
  try {
    if (!memory && !readOnly) mkdirSync(dirname(path), { recursive: true });
    db = new DatabaseSync(path, { readOnly });
  } catch (err) {
    throw unavailable('open', err);
  }
  try {
    db.exec(`PRAGMA busy_timeout = ${Math.max(1, Math.floor(busyTimeoutMs))}`);
    db.exec(`PRAGMA cache_size = ${-Math.max(1, Math.floor(cacheMiB)) * 1024}`);
    db.exec('PRAGMA temp_store = MEMORY');
    db.exec(`PRAGMA mmap_size = ${2 * 1024 * 1024 * 1024}`);
    if (readOnly) {
      checkSchema(db, path);
    } else {
      db.exec('PRAGMA journal_mode = WAL');
      // WAL + NORMAL: a power cut may lose the last batches but never corrupts the file.
      db.exec('PRAGMA synchronous = NORMAL');
      // The checkpoint worker keeps the WAL short; this is the safety net should it fall behind.
      db.exec(`PRAGMA wal_autocheckpoint = ${checkpointIntervalMs > 0 ? 20_000 : 1000}`);
      db.exec(`PRAGMA journal_size_limit = ${64 * 1024 * 1024}`);
      db.exec('BEGIN IMMEDIATE');
      try {
        db.exec(SCHEMA);
        db.prepare('INSERT OR IGNORE INTO capture_meta (name, value) VALUES (?, ?)').run(
          'schema',
          String(CAPTURE_SCHEMA_VERSION),
        );
        checkSchema(db, path);
        db.exec('COMMIT');
      } catch (err) {
        rollback(db);
        throw err;
      }
    }
  } catch (err) {
    db.close();
    if (SwitchyardError.is(err)) throw err;
    throw unavailable('open', err);
  }

  let closed = false;
  /** capture_calls_live exists (checked until it does: a writer may create it later). */
  let liveIndex = false;
  const checkpointer =
    memory || checkpointIntervalMs <= 0
      ? undefined
      : new Worker(CHECKPOINT_WORKER, { eval: true, workerData: { path, intervalMs: checkpointIntervalMs } });
  // A failed checkpointer only means the inserting connection checkpoints itself again.
  checkpointer?.on('error', () => undefined);
  checkpointer?.unref();
  const statements = new Map<string, StatementSync>();
  const stmt = (sql: string): StatementSync => {
    let s = statements.get(sql);
    if (!s) {
      s = db.prepare(sql);
      statements.set(sql, s);
    }
    return s;
  };

  function unavailable(op: string, err: unknown): SwitchyardError {
    const code = sqliteCode(err);
    const busy = code === SQLITE_BUSY || code === SQLITE_LOCKED;
    return new SwitchyardError(
      ErrorCode.CAPTURE_STORE_UNAVAILABLE,
      `capture store ${op}: ${busy ? 'database file busy' : describeError(err)}`,
      { retryable: true, cause: err, details: { op, path } },
    );
  }

  /** Runs `fn`, mapping SQLite failures (busy, I/O, full disk) to a retryable error. */
  function run<T>(op: string, fn: () => T): T {
    if (closed) throw new SwitchyardError(ErrorCode.CLOSED, `capture store closed (${op})`);
    try {
      return fn();
    } catch (err) {
      if (SwitchyardError.is(err)) throw err;
      if (sqliteCode(err) === undefined) throw err; // a bug of ours
      throw unavailable(op, err);
    }
  }

  function inTx<T>(fn: () => T): T {
    db.exec('BEGIN IMMEDIATE');
    try {
      const result = fn();
      db.exec('COMMIT');
      return result;
    } catch (err) {
      rollback(db);
      throw err;
    }
  }

  // ---- writing ----------------------------------------------------------------------------

  const insertMessage = () =>
    stmt(
      'INSERT INTO capture_messages (call_pk, ts_us, src_ip, src_port, dst_ip, dst_port, transport,' +
        ' capture_id, correlation_id, method, status, cseq, from_user, to_user, from_tag, to_tag,' +
        ' x_correlation, size, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );

  function addIndexRows(pk: number, firstTs: number, endpoints: string[], keys: string[]): void {
    const ep = stmt(
      'INSERT OR IGNORE INTO capture_call_endpoints (endpoint, first_ts, call_pk) VALUES (?, ?, ?)',
    );
    for (const e of endpoints) ep.run(e, firstTs, pk);
    const ck = stmt('INSERT OR IGNORE INTO capture_correlation_keys (key, call_pk) VALUES (?, ?)');
    for (const k of keys) ck.run(k, pk);
  }

  function removeIndexRows(pk: number, firstTs: number, endpoints: string[], keys: string[]): void {
    const ep = stmt('DELETE FROM capture_call_endpoints WHERE endpoint = ? AND first_ts = ? AND call_pk = ?');
    for (const e of endpoints) ep.run(e, firstTs, pk);
    const ck = stmt('DELETE FROM capture_correlation_keys WHERE key = ? AND call_pk = ?');
    for (const k of keys) ck.run(k, pk);
  }

  /** Upserts one call's state; returns its pk, negated for a new call. Inside the batch transaction. */
  function upsertCall(callId: string, delta: CallState): number {
    const row = stmt(
      'SELECT pk, first_ts, from_user, to_user, status, state FROM capture_calls WHERE call_id = ?',
    ).get(callId) as CallRow | undefined;
    if (row === undefined) {
      const summary = summarizeCall(delta);
      const res = stmt(
        'INSERT INTO capture_calls (call_id, first_ts, last_ts, from_user, to_user, status, message_count,' +
          ' bytes, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(
        callId,
        delta.firstTsUs,
        delta.lastTsUs,
        summary.fromUser,
        summary.toUser,
        summary.status,
        delta.messageCount,
        delta.bytes,
        JSON.stringify(delta),
      );
      const pk = Number(res.lastInsertRowid);
      const rows = indexRowsOf(delta);
      addIndexRows(pk, delta.firstTsUs, rows.endpoints, rows.keys);
      return -pk;
    }
    const old = JSON.parse(row.state) as CallState;
    const merged = mergeCallStates(old, delta);
    const summary = summarizeCall(merged);
    // Name only the indexed columns that change: SQLite rewrites every index on a SET column.
    const sets = ['last_ts = ?', 'message_count = ?', 'bytes = ?', 'state = ?'];
    const values: SQLInputValue[] = [
      merged.lastTsUs,
      merged.messageCount,
      merged.bytes,
      JSON.stringify(merged),
    ];
    if (merged.firstTsUs !== row.first_ts) {
      sets.push('first_ts = ?');
      values.push(merged.firstTsUs);
    }
    if (summary.fromUser !== row.from_user) {
      sets.push('from_user = ?');
      values.push(summary.fromUser);
    }
    if (summary.toUser !== row.to_user) {
      sets.push('to_user = ?');
      values.push(summary.toUser);
    }
    if (summary.status !== row.status) {
      sets.push('status = ?');
      values.push(summary.status);
    }
    stmt(`UPDATE capture_calls SET ${sets.join(', ')} WHERE pk = ?`).run(...values, row.pk);
    // A merged set contains the old one, so an equal size means nothing new (the common case).
    const moved = merged.firstTsUs !== row.first_ts;
    if (
      moved ||
      merged.endpoints.length !== old.endpoints.length ||
      merged.correlation.length !== old.correlation.length
    ) {
      const before = indexRowsOf(old);
      const after = indexRowsOf(merged);
      if (moved) {
        // Endpoint rows carry first_ts: move them all.
        removeIndexRows(row.pk, row.first_ts, before.endpoints, []);
        addIndexRows(row.pk, merged.firstTsUs, after.endpoints, missingFrom(after.keys, before.keys));
      } else {
        addIndexRows(
          row.pk,
          merged.firstTsUs,
          missingFrom(after.endpoints, before.endpoints),
          missingFrom(after.keys, before.keys),
        );
      }
    }
    return row.pk;
  }

  function insertBatchSync(messages: CapturedMessage[]): void {
    const states = foldBatch(messages);
    // New calls get their pk in Call-ID order, as in the PostgreSQL store (search tie-break).
    const ids = [...states.keys()].sort();
    inTx(() => {
      const pks = new Map<string, number>();
      let created = 0;
      let bytes = 0;
      for (const id of ids) {
        const pk = upsertCall(id, states.get(id) as CallState);
        if (pk < 0) created++;
        pks.set(id, Math.abs(pk));
      }
      const ins = insertMessage();
      for (const m of messages) {
        ins.run(
          pks.get(m.callId) as number,
          m.tsUs,
          m.srcIp,
          m.srcPort,
          m.dstIp,
          m.dstPort,
          m.transport,
          m.captureId,
          m.correlationId ?? null,
          m.method ?? null,
          m.status ?? null,
          m.cseq,
          m.fromUser,
          m.toUser,
          m.fromTag ?? null,
          m.toTag ?? null,
          m.xCorrelation ?? null,
          m.raw.byteLength,
          m.raw,
        );
        bytes += m.raw.byteLength;
      }
      addTotals(created, messages.length, bytes);
    });
  }

  function addTotals(calls: number, messages: number, bytes: number): void {
    stmt(
      'UPDATE capture_totals SET calls = calls + ?, messages = messages + ?, bytes = bytes + ? WHERE shard = 0',
    ).run(calls, messages, bytes);
  }

  // ---- retention --------------------------------------------------------------------------

  interface RetentionCallRow {
    pk: number;
    first_ts: number;
    last_ts: number;
    bytes: number;
    state: string;
  }

  /** Deletes a whole call; returns the messages removed. Inside a transaction. */
  function deleteCall(r: RetentionCallRow): number {
    const state = JSON.parse(r.state) as CallState;
    const rows = indexRowsOf(state);
    removeIndexRows(r.pk, r.first_ts, rows.endpoints, rows.keys);
    const res = stmt('DELETE FROM capture_messages WHERE call_pk = ?').run(r.pk);
    stmt('DELETE FROM capture_calls WHERE pk = ?').run(r.pk);
    addTotals(-1, -Number(res.changes), -r.bytes);
    return Number(res.changes);
  }

  /** Deletes a call's messages older than `cutoff`, keeping its summary; returns how many. */
  function trimCall(r: RetentionCallRow, cutoff: number): { messages: number; callDeleted: boolean } {
    const gone = stmt('DELETE FROM capture_messages WHERE call_pk = ? AND ts_us < ? RETURNING size').all(
      r.pk,
      cutoff,
    ) as { size: number }[];
    if (gone.length === 0) return { messages: 0, callDeleted: false };
    const state = JSON.parse(r.state) as CallState;
    let goneBytes = 0;
    for (const g of gone) goneBytes += g.size;
    addTotals(0, -gone.length, -goneBytes);
    state.messageCount -= gone.length;
    state.bytes -= goneBytes;
    if (state.messageCount <= 0) {
      deleteCall({ ...r, bytes: state.bytes, state: JSON.stringify(state) });
      return { messages: gone.length, callDeleted: true };
    }
    stmt('UPDATE capture_calls SET message_count = ?, bytes = ?, state = ? WHERE pk = ?').run(
      state.messageCount,
      state.bytes,
      JSON.stringify(state),
      r.pk,
    );
    return { messages: gone.length, callDeleted: false };
  }

  async function retainByAge(cutoff: number): Promise<{ messages: number; calls: number }> {
    let messages = 0;
    let calls = 0;
    // Keyset pagination over calls whose first message is older than the cutoff: calls that
    // ended before it go whole, calls still going on lose only their older messages.
    let after = { ts: Number.MIN_SAFE_INTEGER, pk: 0 };
    for (;;) {
      const done = run('retention', () =>
        inTx(() => {
          const rows = stmt(
            'SELECT pk, first_ts, last_ts, bytes, state FROM capture_calls INDEXED BY capture_calls_by_first' +
              ' WHERE first_ts < ? AND (first_ts > ? OR (first_ts = ? AND pk > ?))' +
              ' ORDER BY first_ts, pk LIMIT ?',
          ).all(cutoff, after.ts, after.ts, after.pk, retentionChunk) as unknown as RetentionCallRow[];
          for (const r of rows) {
            if (r.last_ts < cutoff) {
              messages += deleteCall(r);
              calls++;
            } else {
              const t = trimCall(r, cutoff);
              messages += t.messages;
              if (t.callDeleted) calls++;
            }
          }
          const last = rows.at(-1);
          if (last) after = { ts: last.first_ts, pk: last.pk };
          if (rows.length < retentionChunk) {
            stmt('DELETE FROM capture_events WHERE ts_us < ?').run(cutoff);
            return true;
          }
          return false;
        }),
      );
      if (done) return { messages, calls };
      await yieldToLoop();
    }
  }

  async function retainBySize(maxBytes: number): Promise<{ messages: number; calls: number }> {
    let messages = 0;
    let calls = 0;
    for (;;) {
      const done = run('retention', () =>
        inTx(() => {
          const total = (stmt('SELECT bytes FROM capture_totals WHERE shard = 0').get() as { bytes: number })
            .bytes;
          let excess = total - maxBytes;
          if (excess <= 0) return true;
          const rows = stmt(
            'SELECT pk, first_ts, last_ts, bytes, state FROM capture_calls INDEXED BY capture_calls_by_first' +
              ' ORDER BY first_ts, pk LIMIT ?',
          ).all(retentionChunk) as unknown as RetentionCallRow[];
          for (const r of rows) {
            if (excess <= 0) break;
            messages += deleteCall(r);
            calls++;
            excess -= r.bytes;
          }
          return excess <= 0 || rows.length === 0;
        }),
      );
      if (done) return { messages, calls };
      await yieldToLoop();
    }
  }

  // ---- the store --------------------------------------------------------------------------

  const readSummary = (state: string): CallSummary => summarizeCall(JSON.parse(state) as CallState);

  const store: SqliteCaptureStore = {
    kind: 'sqlite',
    path,

    async insertBatch(messages: CapturedMessage[]): Promise<void> {
      if (readOnly) throw readOnlyError('insertBatch');
      validateBatch(messages);
      if (messages.length === 0) return;
      const clean = sanitizeBatch(messages);
      run('insert', () => insertBatchSync(clean));
    },

    async recordEvent(event: ControlEvent): Promise<void> {
      if (readOnly) throw readOnlyError('recordEvent');
      if (!Number.isSafeInteger(event.tsUs))
        throw new SwitchyardError(
          ErrorCode.INVALID_ARGUMENT,
          `recordEvent: tsUs ${event.tsUs} is not an integer`,
        );
      run('record event', () =>
        stmt('INSERT INTO capture_events (ts_us, kind, subject, detail) VALUES (?, ?, ?, ?)').run(
          event.tsUs,
          event.kind,
          event.subject,
          JSON.stringify(event.detail ?? {}),
        ),
      );
    },

    async searchCalls(query: CallQuery): Promise<CallSummary[]> {
      const q = normalizeQuery(query);
      const { sql, params } = buildSearch(q, 'sqlite');
      return run('search', () => {
        const rows = stmt(sql).all(...(params as SQLInputValue[])) as { state: string }[];
        return rows.map((r) => readSummary(r.state));
      });
    },

    async getCall(callId: string): Promise<CallSummary | undefined> {
      return run('get call', () => {
        const row = stmt('SELECT state FROM capture_calls WHERE call_id = ?').get(callId) as
          | { state: string }
          | undefined;
        return row ? readSummary(row.state) : undefined;
      });
    },

    async messagesOf(callIds: string[]): Promise<StoredMessage[]> {
      if (callIds.length === 0) return [];
      return run('messages', () => {
        const rows = stmt(
          `SELECT ${MESSAGE_COLUMNS} FROM capture_calls c JOIN capture_messages m ON m.call_pk = c.pk` +
            ' WHERE c.call_id IN (SELECT value FROM json_each(?)) ORDER BY m.ts_us, m.id',
        ).all(JSON.stringify(callIds)) as unknown as MessageRow[];
        return rows.map(messageFromRow);
      });
    },

    async relatedCallIds(callId: string): Promise<string[]> {
      return run('related calls', () => {
        const row = stmt('SELECT pk, state FROM capture_calls WHERE call_id = ?').get(callId) as
          | { pk: number; state: string }
          | undefined;
        const own = row ? (JSON.parse(row.state) as CallState).correlation : [];
        // Keys are this call's correlation keys and its own Call-ID (a B-leg's X-CID names the
        // A-leg's Call-ID); a related call holds one of them as a key, or is named by one.
        const keys = JSON.stringify([callId, ...own]);
        const rows = stmt(
          'SELECT c.call_id AS call_id FROM capture_calls c WHERE c.call_id <> ? AND (' +
            ' c.pk IN (SELECT call_pk FROM capture_correlation_keys WHERE key IN (SELECT value FROM json_each(?)))' +
            ' OR c.call_id IN (SELECT value FROM json_each(?))) ORDER BY c.first_ts, c.call_id',
        ).all(callId, keys, JSON.stringify(own)) as { call_id: string }[];
        return rows.map((r) => r.call_id);
      });
    },

    async eventsBetween(fromUs: number, toUs: number): Promise<ControlEvent[]> {
      return run('events', () => {
        const rows = stmt(
          'SELECT ts_us, kind, subject, detail FROM capture_events WHERE ts_us >= ? AND ts_us <= ? ORDER BY ts_us, id',
        ).all(fromUs, toUs) as { ts_us: number; kind: string; subject: string; detail: string }[];
        return rows.map((r) => ({
          tsUs: r.ts_us,
          kind: r.kind,
          subject: r.subject,
          detail: JSON.parse(r.detail) as Record<string, unknown>,
        }));
      });
    },

    async liveCalls(query: LiveCallsQuery): Promise<Map<string, LiveCallCount>> {
      const q = normalizeLiveQuery(query);
      return run('live calls', () => {
        // A store opened read-only before a writer of this version created the index has none:
        // the status index answers then, reading the finished answered calls too.
        liveIndex ||=
          stmt("SELECT 1 AS x FROM sqlite_schema WHERE type = 'index' AND name = ?").get(LIVE_CALL_INDEX) !==
          undefined;
        const hint = liveIndex ? ` INDEXED BY ${LIVE_CALL_INDEX}` : '';
        const rows = stmt(
          "SELECT call_id, status, json_extract(state, '$.endpoints') AS endpoints," +
            ` json_extract(state, '$.correlation') AS correlation FROM capture_calls${hint}` +
            ` WHERE ${LIVE_CALL_PREDICATE.sqlite} AND first_ts >= ?`,
        ).all(q.sinceUs) as {
          call_id: string;
          status: string;
          endpoints: string | null;
          correlation: string | null;
        }[];
        const live: LiveCallRow[] = rows.map((r) => ({
          callId: r.call_id,
          status: r.status,
          endpoints: JSON.parse(r.endpoints ?? '[]') as string[],
          correlation: JSON.parse(r.correlation ?? '[]') as string[],
        }));
        return countLiveCalls(live, q.endpoints);
      });
    },

    async applyRetention(policy: RetentionPolicy, nowUs: number): Promise<number> {
      if (readOnly) throw readOnlyError('applyRetention');
      validateRetention(policy, nowUs);
      let removed = 0;
      let removedCalls = 0;
      if (policy.maxAgeMs !== undefined) {
        const r = await retainByAge(nowUs - policy.maxAgeMs * 1000);
        removed += r.messages;
        removedCalls += r.calls;
      }
      if (policy.maxBytes !== undefined) {
        const r = await retainBySize(policy.maxBytes);
        removed += r.messages;
        removedCalls += r.calls;
      }
      const record = { policy: cleanPolicy(policy), atUs: nowUs, removedMessages: removed, removedCalls };
      run('retention', () =>
        stmt(
          'INSERT INTO capture_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
        ).run('retention', JSON.stringify(record)),
      );
      return removed;
    },

    async stats(): Promise<StoreStats> {
      return run('stats', () => {
        // One read transaction: one snapshot of the totals, the time span and the retention record.
        db.exec('BEGIN');
        try {
          const totals = stmt('SELECT calls, messages, bytes FROM capture_totals WHERE shard = 0').get() as {
            calls: number;
            messages: number;
            bytes: number;
          };
          const span = stmt(
            // Two subqueries: SQLite answers a lone MIN() or MAX() from the index, both together by a scan.
            'SELECT (SELECT MIN(ts_us) FROM capture_messages) AS oldest, (SELECT MAX(ts_us) FROM capture_messages) AS newest',
          ).get() as {
            oldest: number | null;
            newest: number | null;
          };
          const meta = stmt("SELECT value FROM capture_meta WHERE name = 'retention'").get() as
            | { value: string }
            | undefined;
          return statsFrom(totals, span, meta?.value);
        } finally {
          rollback(db);
        }
      });
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      statements.clear();
      db.close();
      if (checkpointer) {
        const exited = new Promise((r) => checkpointer.once('exit', r));
        checkpointer.ref(); // keep the process alive until it has closed its connection
        checkpointer.postMessage('stop');
        await exited;
      }
    },
  };
  return store;
}

/** Throws SY_ERR_CAPTURE_STORE_SCHEMA unless the file holds a capture schema this code knows. */
function checkSchema(db: DatabaseSync, path: string): void {
  const table = db
    .prepare("SELECT 1 AS x FROM sqlite_schema WHERE type = 'table' AND name = 'capture_meta'")
    .get();
  const row = table
    ? (db.prepare("SELECT value FROM capture_meta WHERE name = 'schema'").get() as
        | { value: string }
        | undefined)
    : undefined;
  if (row === undefined)
    throw new SwitchyardError(ErrorCode.CAPTURE_STORE_SCHEMA, `${path} is not a switchyard capture store`);
  if (Number(row.value) > CAPTURE_SCHEMA_VERSION) {
    throw new SwitchyardError(
      ErrorCode.CAPTURE_STORE_SCHEMA,
      `${path} has capture schema ${row.value}; this switchyard knows ${CAPTURE_SCHEMA_VERSION}`,
    );
  }
}

function rollback(db: DatabaseSync): void {
  try {
    if (db.isTransaction) db.exec('ROLLBACK');
  } catch {
    // the transaction is gone already
  }
}

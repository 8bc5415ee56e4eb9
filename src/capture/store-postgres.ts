import pg from 'pg';
import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
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
  LIVE_CALL_PREDICATE,
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
 * CaptureStore on PostgreSQL (`pg` Pool), for captures shared by several hosts or kept longer
 * than one disk. Same tables, columns and semantics as the SQLite store (store-sqlite.ts
 * explains the layout); what differs is how concurrent writers are kept apart:
 *
 * - a batch is one transaction of a handful of statements whatever its size: every multi-row
 *   write passes one array per column through UNNEST, so no batch meets the 65,535
 *   bind-parameter limit of the protocol;
 * - new calls are inserted with ON CONFLICT DO NOTHING in Call-ID order, existing ones are
 *   locked with SELECT ... ORDER BY call_id FOR UPDATE, merged in JS (mergeCallStates is
 *   commutative, so which writer goes first does not matter) and written back; the one lock
 *   order rules out deadlocks between batches, and the rare one with retention is retried;
 * - a call deleted by retention while a batch waited for its lock is simply created again;
 * - the totals (capture_totals) are spread over TOTAL_SHARDS rows picked by backend pid, so
 *   concurrent batches do not queue on one counter row; stats() sums them.
 *
 * The live-call index (capture_calls_live, store-common.ts) is partial on the state column, so
 * a call-row UPDATE can no longer be a HOT update (PostgreSQL allows HOT only when no indexed or
 * predicate column changes, and every batch rewrites `state`): a few more index writes per
 * updated call, traded for a liveCalls that reads only the live calls.
 *
 * The schema is created on open, idempotently, under an advisory lock, and versioned in
 * capture_meta. Errors that mean the server is away map to a retryable
 * SY_ERR_CAPTURE_STORE_UNAVAILABLE; messages never contain the connection string.
 */

export interface PostgresCaptureStoreOptions {
  /** `postgres://user[:password]@host[:port]/database[?...]`, as libpq takes it. */
  connectionString: string;
  /** Connections in the pool; default 4. */
  poolSize?: number;
  /** How long to wait for a connection; default 5000 ms. */
  connectTimeoutMs?: number;
  /** Calls deleted per retention transaction; default 500. */
  retentionChunk?: number;
  /** Only read: no schema is created and writes are refused with SY_ERR_INVALID_ARGUMENT. */
  readOnly?: boolean;
  logger?: Logger;
}

export interface PostgresCaptureStore extends CaptureStore {
  readonly kind: 'postgres';
}

/** Arbitrary constant key for pg_advisory_xact_lock while creating the schema. */
const SCHEMA_LOCK_KEY = 0x5377_4361; // 'SwCa'
const TX_ATTEMPTS = 5;
const TOTAL_SHARDS = 16;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS capture_meta (
  name  text PRIMARY KEY,
  value text NOT NULL
);
CREATE TABLE IF NOT EXISTS capture_totals (
  shard    integer PRIMARY KEY,
  calls    bigint NOT NULL,
  messages bigint NOT NULL,
  bytes    bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS capture_calls (
  pk            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  call_id       text COLLATE "C" NOT NULL UNIQUE,
  first_ts      bigint NOT NULL,
  last_ts       bigint NOT NULL,
  from_user     text NOT NULL,
  to_user       text NOT NULL,
  status        text NOT NULL,
  message_count integer NOT NULL,
  bytes         bigint NOT NULL,
  state         jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS capture_calls_by_first ON capture_calls (first_ts, pk);
CREATE INDEX IF NOT EXISTS capture_calls_by_from_user ON capture_calls (from_user, first_ts, pk);
CREATE INDEX IF NOT EXISTS capture_calls_by_to_user ON capture_calls (to_user, first_ts, pk);
CREATE INDEX IF NOT EXISTS capture_calls_by_status ON capture_calls (status, first_ts, pk);
CREATE TABLE IF NOT EXISTS capture_call_endpoints (
  endpoint text NOT NULL,
  first_ts bigint NOT NULL,
  call_pk  bigint NOT NULL,
  PRIMARY KEY (endpoint, first_ts, call_pk)
);
CREATE TABLE IF NOT EXISTS capture_correlation_keys (
  key     text NOT NULL,
  call_pk bigint NOT NULL,
  PRIMARY KEY (key, call_pk)
);
CREATE TABLE IF NOT EXISTS capture_messages (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  call_pk        bigint NOT NULL,
  ts_us          bigint NOT NULL,
  src_ip         text NOT NULL,
  src_port       integer NOT NULL,
  dst_ip         text NOT NULL,
  dst_port       integer NOT NULL,
  transport      text NOT NULL,
  capture_id     bigint NOT NULL,
  correlation_id text,
  method         text,
  status         integer,
  cseq           text NOT NULL,
  from_user      text NOT NULL,
  to_user        text NOT NULL,
  from_tag       text,
  to_tag         text,
  x_correlation  text,
  size           integer NOT NULL,
  raw            bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS capture_messages_by_call ON capture_messages (call_pk, ts_us, id);
CREATE INDEX IF NOT EXISTS capture_messages_by_ts ON capture_messages (ts_us);
CREATE TABLE IF NOT EXISTS capture_events (
  id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ts_us   bigint NOT NULL,
  kind    text NOT NULL,
  subject text NOT NULL,
  detail  jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS capture_events_by_ts ON capture_events (ts_us, id);
${liveCallIndexDdl('postgres')}
`;

const INT8_OID = 20;

/**
 * Type parsers for this pool only (pg.types.setTypeParser would change every pg user in the
 * process): bigint columns come back as numbers. All of ours (µs timestamps, ids, byte counts)
 * stay below 2^53.
 */
const TYPES = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') {
      return (value: string) => {
        const n = Number(value);
        if (!Number.isSafeInteger(n)) throw new RangeError(`bigint ${value} exceeds 2^53`);
        return n;
      };
    }
    return pg.types.getTypeParser(oid, format);
  },
} as unknown as pg.CustomTypesConfig;

/** Node socket errors and SQLSTATE classes that mean "the server is away or overloaded". */
const NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

function pgCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string')
    return err.code;
  return undefined;
}

export function isConnectionError(err: unknown): boolean {
  const code = pgCode(err);
  if (code !== undefined) {
    if (NET_CODES.has(code)) return true;
    // 08 connection exception, 53 insufficient resources, 57 operator intervention (shutdown).
    if (/^(08|53|57P)/.test(code)) return true;
  }
  const message = err instanceof Error ? err.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    message,
  );
}

/** Deadlock and serialization failures: the transaction can simply run again. */
function isTransient(err: unknown): boolean {
  const code = pgCode(err);
  return code === '40P01' || code === '40001';
}

interface ExistingCall {
  pk: number;
  call_id: string;
  first_ts: number;
  state: CallState;
}

export async function createPostgresCaptureStore(
  opts: PostgresCaptureStoreOptions,
): Promise<PostgresCaptureStore> {
  const retentionChunk = opts.retentionChunk ?? 500;
  const readOnly = opts.readOnly ?? false;
  const logger = opts.logger?.child({ component: 'capture-store-postgres' });
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.poolSize ?? 4,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    types: TYPES,
    application_name: 'switchyard-capture',
  });
  // An idle client that loses its server emits here; without a listener it would crash the process.
  pool.on('error', (err) =>
    logger?.warn({ err: describeError(err) }, 'idle capture store connection failed'),
  );
  let closed = false;

  function mapError(op: string, err: unknown): unknown {
    if (SwitchyardError.is(err)) return err;
    if (isConnectionError(err)) {
      return new SwitchyardError(
        ErrorCode.CAPTURE_STORE_UNAVAILABLE,
        `capture store ${op}: ${describeError(err)}`,
        {
          retryable: true,
          cause: err,
          details: { op },
        },
      );
    }
    return err;
  }

  async function query<R extends pg.QueryResultRow>(
    op: string,
    sql: string,
    params: unknown[] = [],
  ): Promise<R[]> {
    if (closed) throw new SwitchyardError(ErrorCode.CLOSED, `capture store closed (${op})`);
    try {
      return (await pool.query<R>(sql, params)).rows;
    } catch (err) {
      throw mapError(op, err);
    }
  }

  /** Runs `fn` in a transaction, again on deadlock or serialization failure. */
  async function withTx<T>(op: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    if (closed) throw new SwitchyardError(ErrorCode.CLOSED, `capture store closed (${op})`);
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw mapError(op, err);
      }
      try {
        await client.query('BEGIN');
        const result = await fn(client);
        await client.query('COMMIT');
        client.release();
        return result;
      } catch (err) {
        const broken = isConnectionError(err);
        if (!broken) await client.query('ROLLBACK').catch(() => undefined);
        // A broken connection is destroyed rather than returned to the pool.
        client.release(broken ? (err as Error) : undefined);
        if (isTransient(err) && attempt < TX_ATTEMPTS) {
          logger?.debug({ op, attempt, err: describeError(err) }, 'capture store transaction retried');
          continue;
        }
        throw mapError(op, err);
      }
    }
  }

  // ---- schema -------------------------------------------------------------------------------

  try {
    await withTx('open', async (c) => {
      if (!readOnly) {
        await c.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_KEY]);
        await c.query(SCHEMA);
        await c.query(
          "INSERT INTO capture_meta (name, value) VALUES ('schema', $1) ON CONFLICT (name) DO NOTHING",
          [String(CAPTURE_SCHEMA_VERSION)],
        );
      }
      const exists = await c.query<{ t: string | null }>("SELECT to_regclass('capture_meta')::text AS t");
      const r = exists.rows[0]?.t
        ? await c.query<{ value: string }>("SELECT value FROM capture_meta WHERE name = 'schema'")
        : { rows: [] };
      const version = Number(r.rows[0]?.value);
      if (Number.isNaN(version))
        throw new SwitchyardError(
          ErrorCode.CAPTURE_STORE_SCHEMA,
          'the database holds no switchyard capture store',
        );
      if (version > CAPTURE_SCHEMA_VERSION) {
        throw new SwitchyardError(
          ErrorCode.CAPTURE_STORE_SCHEMA,
          `the capture database has schema ${version}; this switchyard knows ${CAPTURE_SCHEMA_VERSION}`,
        );
      }
    });
  } catch (err) {
    closed = true;
    await pool.end().catch(() => undefined);
    throw err;
  }

  // ---- writing ------------------------------------------------------------------------------

  /** Adds to the totals; the last statement of a transaction, so the row lock is held briefly. */
  async function addTotals(c: pg.PoolClient, calls: number, messages: number, bytes: number) {
    await c.query(
      `INSERT INTO capture_totals (shard, calls, messages, bytes) VALUES (pg_backend_pid() % ${TOTAL_SHARDS}, $1, $2, $3)` +
        ' ON CONFLICT (shard) DO UPDATE SET calls = capture_totals.calls + excluded.calls,' +
        ' messages = capture_totals.messages + excluded.messages, bytes = capture_totals.bytes + excluded.bytes',
      [calls, messages, bytes],
    );
  }

  async function insertNewCalls(c: pg.PoolClient, ids: string[], deltas: Map<string, CallState>) {
    const cols = {
      id: [] as string[],
      first: [] as number[],
      last: [] as number[],
      from: [] as string[],
      to: [] as string[],
      status: [] as string[],
      count: [] as number[],
      bytes: [] as number[],
      state: [] as string[],
    };
    for (const id of ids) {
      const d = deltas.get(id) as CallState;
      const s = summarizeCall(d);
      cols.id.push(id);
      cols.first.push(d.firstTsUs);
      cols.last.push(d.lastTsUs);
      cols.from.push(s.fromUser);
      cols.to.push(s.toUser);
      cols.status.push(s.status);
      cols.count.push(d.messageCount);
      cols.bytes.push(d.bytes);
      cols.state.push(JSON.stringify(d));
    }
    const r = await c.query<{ pk: number; call_id: string }>(
      'INSERT INTO capture_calls (call_id, first_ts, last_ts, from_user, to_user, status, message_count, bytes, state)' +
        ' SELECT u.id, u.first, u.last, u.from_user, u.to_user, u.status, u.count, u.bytes, u.state::jsonb' +
        ' FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::int[],' +
        ' $8::bigint[], $9::text[]) AS u(id, first, last, from_user, to_user, status, count, bytes, state)' +
        ' ORDER BY u.id COLLATE "C" ON CONFLICT (call_id) DO NOTHING RETURNING pk, call_id',
      [cols.id, cols.first, cols.last, cols.from, cols.to, cols.status, cols.count, cols.bytes, cols.state],
    );
    return r.rows;
  }

  async function insertBatchTx(
    c: pg.PoolClient,
    messages: CapturedMessage[],
    deltas: Map<string, CallState>,
  ) {
    const pks = new Map<string, number>();
    const created: CallState[] = [];
    const existing: ExistingCall[] = [];
    let pending = [...deltas.keys()].sort();
    for (let round = 0; pending.length > 0; round++) {
      if (round > TX_ATTEMPTS) throw new Error('capture store: call rows keep vanishing under the batch');
      for (const r of await insertNewCalls(c, pending, deltas)) {
        pks.set(r.call_id, r.pk);
        created.push(deltas.get(r.call_id) as CallState);
      }
      const rest = pending.filter((id) => !pks.has(id));
      if (rest.length === 0) break;
      const locked = await c.query<ExistingCall>(
        'SELECT pk, call_id, first_ts, state FROM capture_calls WHERE call_id = ANY($1::text[])' +
          ' ORDER BY call_id FOR UPDATE',
        [rest],
      );
      for (const r of locked.rows) {
        pks.set(r.call_id, r.pk);
        existing.push(r);
      }
      // Rows deleted by retention while we waited for their lock: insert them afresh.
      pending = rest.filter((id) => !pks.has(id));
    }

    // Merge into existing calls.
    const upd = {
      pk: [] as number[],
      first: [] as number[],
      last: [] as number[],
      from: [] as string[],
      to: [] as string[],
      status: [] as string[],
      count: [] as number[],
      bytes: [] as number[],
      state: [] as string[],
    };
    const addEp = { endpoint: [] as string[], first: [] as number[], pk: [] as number[] };
    const delEp = { endpoint: [] as string[], first: [] as number[], pk: [] as number[] };
    const addKey = { key: [] as string[], pk: [] as number[] };
    const pushEndpoints = (target: typeof addEp, endpoints: string[], first: number, pk: number) => {
      for (const e of endpoints) {
        target.endpoint.push(e);
        target.first.push(first);
        target.pk.push(pk);
      }
    };
    const pushKeys = (keys: string[], pk: number) => {
      for (const k of keys) {
        addKey.key.push(k);
        addKey.pk.push(pk);
      }
    };
    for (const d of created) {
      const pk = pks.get(d.callId) as number;
      const rows = indexRowsOf(d);
      pushEndpoints(addEp, rows.endpoints, d.firstTsUs, pk);
      pushKeys(rows.keys, pk);
    }
    for (const row of existing) {
      const merged = mergeCallStates(row.state, deltas.get(row.call_id) as CallState);
      const s = summarizeCall(merged);
      upd.pk.push(row.pk);
      upd.first.push(merged.firstTsUs);
      upd.last.push(merged.lastTsUs);
      upd.from.push(s.fromUser);
      upd.to.push(s.toUser);
      upd.status.push(s.status);
      upd.count.push(merged.messageCount);
      upd.bytes.push(merged.bytes);
      upd.state.push(JSON.stringify(merged));
      const before = indexRowsOf(row.state);
      const after = indexRowsOf(merged);
      if (merged.firstTsUs !== row.first_ts) {
        pushEndpoints(delEp, before.endpoints, row.first_ts, row.pk);
        pushEndpoints(addEp, after.endpoints, merged.firstTsUs, row.pk);
      } else {
        pushEndpoints(addEp, missingFrom(after.endpoints, before.endpoints), merged.firstTsUs, row.pk);
      }
      pushKeys(missingFrom(after.keys, before.keys), row.pk);
    }
    if (upd.pk.length > 0) {
      await c.query(
        'UPDATE capture_calls c SET first_ts = u.first, last_ts = u.last, from_user = u.from_user,' +
          ' to_user = u.to_user, status = u.status, message_count = u.count, bytes = u.bytes, state = u.state::jsonb' +
          ' FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::int[],' +
          ' $8::bigint[], $9::text[]) AS u(pk, first, last, from_user, to_user, status, count, bytes, state)' +
          ' WHERE c.pk = u.pk',
        [upd.pk, upd.first, upd.last, upd.from, upd.to, upd.status, upd.count, upd.bytes, upd.state],
      );
    }
    if (delEp.pk.length > 0) {
      await c.query(
        'DELETE FROM capture_call_endpoints e USING unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(endpoint, first, pk)' +
          ' WHERE e.endpoint = u.endpoint AND e.first_ts = u.first AND e.call_pk = u.pk',
        [delEp.endpoint, delEp.first, delEp.pk],
      );
    }
    if (addEp.pk.length > 0) {
      await c.query(
        'INSERT INTO capture_call_endpoints (endpoint, first_ts, call_pk)' +
          ' SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) ON CONFLICT DO NOTHING',
        [addEp.endpoint, addEp.first, addEp.pk],
      );
    }
    if (addKey.pk.length > 0) {
      await c.query(
        'INSERT INTO capture_correlation_keys (key, call_pk)' +
          ' SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING',
        [addKey.key, addKey.pk],
      );
    }

    const cols: unknown[][] = Array.from({ length: 19 }, () => new Array(messages.length));
    messages.forEach((m, i) => {
      const values = [
        pks.get(m.callId),
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
      ];
      for (let k = 0; k < values.length; k++) (cols[k] as unknown[])[i] = values[k];
    });
    await c.query(
      'INSERT INTO capture_messages (call_pk, ts_us, src_ip, src_port, dst_ip, dst_port, transport, capture_id,' +
        ' correlation_id, method, status, cseq, from_user, to_user, from_tag, to_tag, x_correlation, size, raw)' +
        ' SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::int[], $5::text[], $6::int[], $7::text[],' +
        ' $8::bigint[], $9::text[], $10::text[], $11::int[], $12::text[], $13::text[], $14::text[], $15::text[],' +
        ' $16::text[], $17::text[], $18::int[], $19::bytea[])',
      cols,
    );
    let bytes = 0;
    for (const m of messages) bytes += m.raw.byteLength;
    await addTotals(c, created.length, messages.length, bytes);
  }

  // ---- retention ----------------------------------------------------------------------------

  interface RetentionRow {
    pk: number;
    call_id: string;
    first_ts: number;
    last_ts: number;
    bytes: number;
    state: CallState;
  }

  /** Locks the calls (in Call-ID order, as batches do) and returns them as they are now. */
  async function lockCalls(c: pg.PoolClient, pks: number[]): Promise<RetentionRow[]> {
    const r = await c.query<RetentionRow>(
      'SELECT pk, call_id, first_ts, last_ts, bytes, state FROM capture_calls WHERE pk = ANY($1::bigint[])' +
        ' ORDER BY call_id FOR UPDATE',
      [pks],
    );
    return r.rows;
  }

  /** Deletes whole calls; returns the messages removed. */
  async function deleteCalls(c: pg.PoolClient, rows: RetentionRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    const pks = rows.map((r) => r.pk);
    const ep = { endpoint: [] as string[], first: [] as number[], pk: [] as number[] };
    const keys = { key: [] as string[], pk: [] as number[] };
    for (const r of rows) {
      const idx = indexRowsOf(r.state);
      for (const e of idx.endpoints) {
        ep.endpoint.push(e);
        ep.first.push(r.first_ts);
        ep.pk.push(r.pk);
      }
      for (const k of idx.keys) {
        keys.key.push(k);
        keys.pk.push(r.pk);
      }
    }
    await c.query(
      'DELETE FROM capture_call_endpoints e USING unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(endpoint, first, pk)' +
        ' WHERE e.endpoint = u.endpoint AND e.first_ts = u.first AND e.call_pk = u.pk',
      [ep.endpoint, ep.first, ep.pk],
    );
    await c.query(
      'DELETE FROM capture_correlation_keys k USING unnest($1::text[], $2::bigint[]) AS u(key, pk)' +
        ' WHERE k.key = u.key AND k.call_pk = u.pk',
      [keys.key, keys.pk],
    );
    const m = await c.query('DELETE FROM capture_messages WHERE call_pk = ANY($1::bigint[])', [pks]);
    await c.query('DELETE FROM capture_calls WHERE pk = ANY($1::bigint[])', [pks]);
    const messages = m.rowCount ?? 0;
    await addTotals(c, -rows.length, -messages, -rows.reduce((n, r) => n + r.bytes, 0));
    return messages;
  }

  /** Deletes messages older than `cutoff` of calls still going on; returns the messages removed. */
  async function trimCalls(
    c: pg.PoolClient,
    rows: RetentionRow[],
    cutoff: number,
  ): Promise<{ messages: number; calls: number }> {
    if (rows.length === 0) return { messages: 0, calls: 0 };
    const gone = await c.query<{ call_pk: number; n: number; b: number }>(
      'WITH d AS (DELETE FROM capture_messages WHERE call_pk = ANY($1::bigint[]) AND ts_us < $2 RETURNING call_pk, size)' +
        ' SELECT call_pk, count(*)::bigint AS n, sum(size)::bigint AS b FROM d GROUP BY call_pk',
      [rows.map((r) => r.pk), cutoff],
    );
    const byPk = new Map(rows.map((r) => [r.pk, r]));
    const emptied: RetentionRow[] = [];
    const upd = { pk: [] as number[], count: [] as number[], bytes: [] as number[], state: [] as string[] };
    let messages = 0;
    let goneBytes = 0;
    for (const g of gone.rows) {
      const r = byPk.get(g.call_pk);
      if (!r) continue;
      messages += g.n;
      goneBytes += g.b;
      r.state.messageCount -= g.n;
      r.state.bytes -= g.b;
      r.bytes = r.state.bytes;
      if (r.state.messageCount <= 0) {
        emptied.push(r);
        continue;
      }
      upd.pk.push(r.pk);
      upd.count.push(r.state.messageCount);
      upd.bytes.push(r.state.bytes);
      upd.state.push(JSON.stringify(r.state));
    }
    if (upd.pk.length > 0) {
      await c.query(
        'UPDATE capture_calls c SET message_count = u.count, bytes = u.bytes, state = u.state::jsonb' +
          ' FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::text[]) AS u(pk, count, bytes, state)' +
          ' WHERE c.pk = u.pk',
        [upd.pk, upd.count, upd.bytes, upd.state],
      );
    }
    await addTotals(c, 0, -messages, -goneBytes);
    messages += await deleteCalls(c, emptied);
    return { messages, calls: emptied.length };
  }

  async function retainByAge(cutoff: number): Promise<{ messages: number; calls: number }> {
    let messages = 0;
    let calls = 0;
    let after = { ts: Number.MIN_SAFE_INTEGER, pk: 0 };
    for (;;) {
      const candidates = await query<{ pk: number; first_ts: number }>(
        'retention',
        'SELECT pk, first_ts FROM capture_calls WHERE first_ts < $1 AND (first_ts, pk) > ($2, $3)' +
          ' ORDER BY first_ts, pk LIMIT $4',
        [cutoff, after.ts, after.pk, retentionChunk],
      );
      const last = candidates.at(-1);
      if (last) after = { ts: last.first_ts, pk: last.pk };
      if (candidates.length > 0) {
        const r = await withTx('retention', async (c) => {
          const rows = await lockCalls(
            c,
            candidates.map((x) => x.pk),
          );
          const whole = rows.filter((x) => x.last_ts < cutoff);
          const going = rows.filter((x) => x.last_ts >= cutoff);
          const removed = await deleteCalls(c, whole);
          const trimmed = await trimCalls(c, going, cutoff);
          return { messages: removed + trimmed.messages, calls: whole.length + trimmed.calls };
        });
        messages += r.messages;
        calls += r.calls;
      }
      if (candidates.length < retentionChunk) break;
    }
    await query('retention', 'DELETE FROM capture_events WHERE ts_us < $1', [cutoff]);
    return { messages, calls };
  }

  async function retainBySize(maxBytes: number): Promise<{ messages: number; calls: number }> {
    let messages = 0;
    let calls = 0;
    for (;;) {
      const [total] = await query<{ b: number }>(
        'retention',
        'SELECT coalesce(sum(bytes), 0)::bigint AS b FROM capture_totals',
      );
      let excess = (total?.b ?? 0) - maxBytes;
      if (excess <= 0) break;
      const candidates = await query<{ pk: number; bytes: number }>(
        'retention',
        'SELECT pk, bytes FROM capture_calls ORDER BY first_ts, pk LIMIT $1',
        [retentionChunk],
      );
      if (candidates.length === 0) break;
      const chosen: number[] = [];
      for (const x of candidates) {
        if (excess <= 0) break;
        chosen.push(x.pk);
        excess -= x.bytes;
      }
      const r = await withTx('retention', async (c) => {
        const rows = await lockCalls(c, chosen);
        return { messages: await deleteCalls(c, rows), calls: rows.length };
      });
      messages += r.messages;
      calls += r.calls;
    }
    return { messages, calls };
  }

  // ---- the store ----------------------------------------------------------------------------

  const store: PostgresCaptureStore = {
    kind: 'postgres',

    async insertBatch(batch: CapturedMessage[]): Promise<void> {
      if (readOnly) throw readOnlyError('insertBatch');
      validateBatch(batch);
      if (batch.length === 0) return;
      const messages = sanitizeBatch(batch);
      const deltas = foldBatch(messages);
      await withTx('insert', (c) => insertBatchTx(c, messages, deltas));
    },

    async recordEvent(event: ControlEvent): Promise<void> {
      if (readOnly) throw readOnlyError('recordEvent');
      if (!Number.isSafeInteger(event.tsUs))
        throw new SwitchyardError(
          ErrorCode.INVALID_ARGUMENT,
          `recordEvent: tsUs ${event.tsUs} is not an integer`,
        );
      await query(
        'record event',
        'INSERT INTO capture_events (ts_us, kind, subject, detail) VALUES ($1, $2, $3, $4::jsonb)',
        [event.tsUs, event.kind, event.subject, JSON.stringify(event.detail ?? {})],
      );
    },

    async searchCalls(q: CallQuery): Promise<CallSummary[]> {
      const { sql, params } = buildSearch(normalizeQuery(q), 'postgres');
      const rows = await query<{ state: CallState }>('search', sql, params);
      return rows.map((r) => summarizeCall(r.state));
    },

    async getCall(callId: string): Promise<CallSummary | undefined> {
      const rows = await query<{ state: CallState }>(
        'get call',
        'SELECT state FROM capture_calls WHERE call_id = $1',
        [callId],
      );
      return rows[0] ? summarizeCall(rows[0].state) : undefined;
    },

    async messagesOf(callIds: string[]): Promise<StoredMessage[]> {
      if (callIds.length === 0) return [];
      const rows = await query<MessageRow>(
        'messages',
        `SELECT ${MESSAGE_COLUMNS} FROM capture_calls c JOIN capture_messages m ON m.call_pk = c.pk` +
          ' WHERE c.call_id = ANY($1::text[]) ORDER BY m.ts_us, m.id',
        [callIds],
      );
      // bytea arrives as a Buffer (a view on pg's pool memory): hand out plain Uint8Array copies.
      return rows.map((r) => messageFromRow({ ...r, raw: new Uint8Array(r.raw) }));
    },

    async relatedCallIds(callId: string): Promise<string[]> {
      const own = await query<{ correlation: string[] }>(
        'related calls',
        "SELECT coalesce(state->'correlation', '[]'::jsonb) AS correlation FROM capture_calls WHERE call_id = $1",
        [callId],
      );
      const keys = own[0]?.correlation ?? [];
      const rows = await query<{ call_id: string }>(
        'related calls',
        'SELECT c.call_id FROM capture_calls c WHERE c.call_id <> $1 AND (' +
          ' c.pk IN (SELECT call_pk FROM capture_correlation_keys WHERE key = ANY($2::text[]))' +
          ' OR c.call_id = ANY($3::text[])) ORDER BY c.first_ts, c.call_id',
        [callId, [callId, ...keys], keys],
      );
      return rows.map((r) => r.call_id);
    },

    async eventsBetween(fromUs: number, toUs: number): Promise<ControlEvent[]> {
      const rows = await query<{
        ts_us: number;
        kind: string;
        subject: string;
        detail: Record<string, unknown>;
      }>(
        'events',
        'SELECT ts_us, kind, subject, detail FROM capture_events WHERE ts_us >= $1 AND ts_us <= $2 ORDER BY ts_us, id',
        [fromUs, toUs],
      );
      return rows.map((r) => ({ tsUs: r.ts_us, kind: r.kind, subject: r.subject, detail: r.detail }));
    },

    async liveCalls(q: LiveCallsQuery): Promise<Map<string, LiveCallCount>> {
      const { sinceUs, endpoints } = normalizeLiveQuery(q);
      // The predicate word for word, so the planner can prove the partial index applies.
      const rows = await query<{
        call_id: string;
        status: string;
        endpoints: string[];
        correlation: string[];
      }>(
        'live calls',
        "SELECT call_id, status, coalesce(state->'endpoints', '[]'::jsonb) AS endpoints," +
          " coalesce(state->'correlation', '[]'::jsonb) AS correlation FROM capture_calls" +
          ` WHERE ${LIVE_CALL_PREDICATE.postgres} AND first_ts >= $1`,
        [sinceUs],
      );
      return countLiveCalls(
        rows.map((r) => ({
          callId: r.call_id,
          status: r.status,
          endpoints: r.endpoints,
          correlation: r.correlation,
        })),
        endpoints,
      );
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
      await query(
        'retention',
        "INSERT INTO capture_meta (name, value) VALUES ('retention', $1) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [JSON.stringify(record)],
      );
      return removed;
    },

    async stats(): Promise<StoreStats> {
      // One statement: one snapshot.
      const [row] = await query<{
        calls: number;
        messages: number;
        bytes: number;
        oldest: number | null;
        newest: number | null;
        retention: string | null;
      }>(
        'stats',
        'SELECT t.calls, t.messages, t.bytes, s.oldest, s.newest,' +
          " (SELECT value FROM capture_meta WHERE name = 'retention') AS retention" +
          ' FROM (SELECT coalesce(sum(calls), 0)::bigint AS calls, coalesce(sum(messages), 0)::bigint AS messages,' +
          ' coalesce(sum(bytes), 0)::bigint AS bytes FROM capture_totals) t,' +
          ' (SELECT min(ts_us) AS oldest, max(ts_us) AS newest FROM capture_messages) s',
      );
      if (!row) throw new Error('capture store stats: no row');
      return statsFrom(row, row, row.retention ?? undefined);
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
  return store;
}

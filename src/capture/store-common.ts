import { ErrorCode, SwitchyardError } from '../core/errors.ts';
import { type CallState, endpointHost } from './call-summary.ts';
import type {
  CallQuery,
  CallStatus,
  CapturedMessage,
  LiveCallCount,
  LiveCallsQuery,
  RetentionPolicy,
  StoredMessage,
  StoreStats,
} from './model.ts';

/**
 * What the SQLite and PostgreSQL capture stores share: argument checks, the search plan, and
 * the schema's table names. Both stores keep the same layout (store-sqlite.ts explains it), so
 * one query builder serves both dialects.
 */

export const CAPTURE_SCHEMA_VERSION = 1;
export const DEFAULT_SEARCH_LIMIT = 100;
/** searchCalls never returns more than this many calls, whatever `limit` asks for. */
export const MAX_SEARCH_LIMIT = 10_000;

const STATUSES: ReadonlySet<string> = new Set<CallStatus>([
  'ringing',
  'answered',
  'failed',
  'cancelled',
  'busy',
  'unknown',
]);

function invalid(message: string): SwitchyardError {
  return new SwitchyardError(ErrorCode.INVALID_ARGUMENT, message);
}

/** Throws SY_ERR_INVALID_ARGUMENT for a message no store can keep; nothing is written then. */
export function validateBatch(messages: readonly CapturedMessage[]): void {
  if (!Array.isArray(messages)) throw invalid('insertBatch: messages must be an array');
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    const where = `insertBatch: message ${i}`;
    if (typeof m !== 'object' || m === null) throw invalid(`${where} is not an object`);
    if (typeof m.callId !== 'string' || m.callId.length === 0) throw invalid(`${where} has no Call-ID`);
    if (!Number.isSafeInteger(m.tsUs) || m.tsUs < 0)
      throw invalid(`${where}: tsUs must be a non-negative integer (µs), got ${m.tsUs}`);
    if (!(m.raw instanceof Uint8Array)) throw invalid(`${where}: raw must be a Uint8Array`);
    for (const port of [m.srcPort, m.dstPort]) {
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw invalid(`${where}: port ${port} invalid`);
    }
    if (!Number.isInteger(m.captureId) || m.captureId < 0 || m.captureId > 0xffffffff)
      throw invalid(`${where}: captureId ${m.captureId} is not a u32`);
    if (m.status !== undefined && (!Number.isInteger(m.status) || m.status < 100 || m.status > 699))
      throw invalid(`${where}: status ${m.status} is not a SIP status code`);
  }
}

const TEXT_FIELDS = [
  'callId',
  'srcIp',
  'dstIp',
  'transport',
  'correlationId',
  'method',
  'cseq',
  'fromUser',
  'toUser',
  'fromTag',
  'toTag',
  'xCorrelation',
] as const;

/**
 * Text fields come from the wire; PostgreSQL text cannot hold U+0000, and one such header would
 * otherwise fail a whole batch. Both stores replace it with U+FFFD, so they return the same
 * thing; raw bytes are never touched. Messages without a NUL are passed through as they are.
 */
export function sanitizeBatch(messages: CapturedMessage[]): CapturedMessage[] {
  let out: CapturedMessage[] | undefined;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as CapturedMessage;
    let fixed: CapturedMessage | undefined;
    for (const field of TEXT_FIELDS) {
      const v = m[field];
      if (typeof v === 'string' && v.includes('\u0000')) {
        fixed ??= { ...m };
        (fixed as unknown as Record<string, string>)[field] = v.replaceAll('\u0000', '\ufffd');
      }
    }
    if (fixed) {
      out ??= messages.slice();
      out[i] = fixed;
    }
  }
  return out ?? messages;
}

/** The error for a write on a store opened read-only. */
export function readOnlyError(op: string): SwitchyardError {
  return invalid(`capture store opened read-only: ${op} refused`);
}

export function validateRetention(policy: RetentionPolicy, nowUs: number): void {
  if (!Number.isSafeInteger(nowUs)) throw invalid(`applyRetention: nowUs must be an integer, got ${nowUs}`);
  const { maxAgeMs, maxBytes } = policy;
  if (maxAgeMs !== undefined && (!Number.isSafeInteger(maxAgeMs) || maxAgeMs < 0))
    throw invalid(`retention maxAgeMs must be a non-negative integer, got ${maxAgeMs}`);
  if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || maxBytes < 0))
    throw invalid(`retention maxBytes must be a non-negative integer, got ${maxBytes}`);
}

/** The policy as stored and reported (no undefined members). */
export function cleanPolicy(policy: RetentionPolicy): RetentionPolicy {
  const out: RetentionPolicy = {};
  if (policy.maxAgeMs !== undefined) out.maxAgeMs = policy.maxAgeMs;
  if (policy.maxBytes !== undefined) out.maxBytes = policy.maxBytes;
  return out;
}

/**
 * The endpoint keys a call is found under: each `ip:port` and each bare host, so that the
 * `endpoint` filter accepts both (CallQuery.endpoint).
 */
export function endpointKeys(endpoints: readonly string[]): string[] {
  const keys = new Set<string>();
  for (const e of endpoints) {
    keys.add(e);
    keys.add(endpointHost(e));
  }
  return [...keys].sort();
}

/** The key an `endpoint` filter looks up: `[v6]` becomes the bare address, the rest is as given. */
export function normalizeEndpointFilter(endpoint: string): string {
  const e = endpoint.trim();
  const bracketed = /^\[([^\]]*)\]$/.exec(e);
  return bracketed ? (bracketed[1] ?? '') : e;
}

export interface NormalizedQuery {
  sinceUs?: number;
  untilUs?: number;
  number?: string;
  status?: CallStatus;
  endpoint?: string;
  limit: number;
}

export function normalizeQuery(q: CallQuery): NormalizedQuery {
  const out: NormalizedQuery = { limit: DEFAULT_SEARCH_LIMIT };
  for (const name of ['sinceUs', 'untilUs'] as const) {
    const v = q[name];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v)) throw invalid(`searchCalls: ${name} must be an integer (µs), got ${v}`);
    out[name] = v;
  }
  if (q.number !== undefined) {
    if (typeof q.number !== 'string') throw invalid('searchCalls: number must be a string');
    out.number = q.number;
  }
  if (q.status !== undefined) {
    if (!STATUSES.has(q.status)) throw invalid(`searchCalls: unknown status ${JSON.stringify(q.status)}`);
    out.status = q.status;
  }
  if (q.endpoint !== undefined) {
    if (typeof q.endpoint !== 'string' || q.endpoint.trim() === '')
      throw invalid('searchCalls: endpoint must be a non-empty string');
    out.endpoint = normalizeEndpointFilter(q.endpoint);
  }
  if (q.limit !== undefined) {
    if (!Number.isInteger(q.limit) || q.limit < 1)
      throw invalid(`searchCalls: limit must be a positive integer, got ${q.limit}`);
    out.limit = Math.min(q.limit, MAX_SEARCH_LIMIT);
  }
  return out;
}

export type Dialect = 'sqlite' | 'postgres';

/**
 * The search as SQL. Calls come newest first (first message time, then the store's insertion
 * key). Every branch walks an index already in that order and stops at `limit`:
 *
 * - a number: two branches, From user and To user (indexes (from_user, first_ts) and
 *   (to_user, first_ts)), merged; a single `from_user = ? OR to_user = ?` would make the
 *   engine collect and sort every call of a busy number (an IVR's) to return the newest 100;
 * - else an endpoint: capture_call_endpoints (endpoint, first_ts, call_pk);
 * - else status (status, first_ts) or time alone (first_ts).
 *
 * The other filters are checked on each row the branch yields. SQLite gets INDEXED BY hints:
 * without ANALYZE statistics it may otherwise pick the status index for a number search.
 * The result rows are `state` (JSON) of the matching calls.
 */
export function buildSearch(q: NormalizedQuery, dialect: Dialect): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const p = (value: unknown): string => {
    params.push(value);
    return dialect === 'sqlite' ? '?' : `$${params.length}`;
  };
  const hint = (index: string) => (dialect === 'sqlite' ? ` INDEXED BY ${index}` : '');

  const callFilters = (skip: { status?: boolean; endpoint?: boolean }): string[] => {
    const where: string[] = [];
    if (q.sinceUs !== undefined) where.push(`c.first_ts >= ${p(q.sinceUs)}`);
    if (q.untilUs !== undefined) where.push(`c.first_ts <= ${p(q.untilUs)}`);
    if (q.status !== undefined && !skip.status) where.push(`c.status = ${p(q.status)}`);
    if (q.endpoint !== undefined && !skip.endpoint) {
      where.push(
        `EXISTS (SELECT 1 FROM capture_call_endpoints e WHERE e.endpoint = ${p(q.endpoint)}` +
          ' AND e.first_ts = c.first_ts AND e.call_pk = c.pk)',
      );
    }
    return where;
  };
  const limit = q.limit;
  const order = 'ORDER BY c.first_ts DESC, c.pk DESC';

  let branches: string[];
  if (q.number !== undefined) {
    branches = (['from_user', 'to_user'] as const).map((column) => {
      const where = [`c.${column} = ${p(q.number)}`, ...callFilters({})];
      return (
        `SELECT c.pk AS pk, c.first_ts AS first_ts FROM capture_calls c${hint(`capture_calls_by_${column}`)}` +
        ` WHERE ${where.join(' AND ')} ${order} LIMIT ${limit}`
      );
    });
  } else if (q.endpoint !== undefined) {
    const where = [`e.endpoint = ${p(q.endpoint)}`];
    if (q.sinceUs !== undefined) where.push(`e.first_ts >= ${p(q.sinceUs)}`);
    if (q.untilUs !== undefined) where.push(`e.first_ts <= ${p(q.untilUs)}`);
    if (q.status !== undefined) where.push(`c.status = ${p(q.status)}`);
    branches = [
      'SELECT c.pk AS pk, c.first_ts AS first_ts FROM capture_call_endpoints e' +
        ' JOIN capture_calls c ON c.pk = e.call_pk' +
        ` WHERE ${where.join(' AND ')} ORDER BY e.first_ts DESC, e.call_pk DESC LIMIT ${limit}`,
    ];
  } else {
    const where = callFilters({});
    const index = q.status !== undefined ? 'capture_calls_by_status' : 'capture_calls_by_first';
    branches = [
      `SELECT c.pk AS pk, c.first_ts AS first_ts FROM capture_calls c${hint(index)}` +
        `${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ${order} LIMIT ${limit}`,
    ];
  }
  // UNION (not ALL): a call from a number to itself is found by both branches.
  const hits = branches.map((b) => `SELECT pk, first_ts FROM (${b}) AS b`).join(' UNION ');
  const sql =
    `SELECT c.state AS state FROM (${hits}) AS hit JOIN capture_calls c ON c.pk = hit.pk` +
    ` ORDER BY hit.first_ts DESC, hit.pk DESC LIMIT ${limit}`;
  return { sql, params };
}

/** The rows a call occupies in capture_call_endpoints and capture_correlation_keys. */
export function indexRowsOf(state: CallState): { endpoints: string[]; keys: string[] } {
  return { endpoints: endpointKeys(state.endpoints), keys: [...state.correlation] };
}

/** Sorted difference `a \ b` of two string lists. */
export function missingFrom(a: readonly string[], b: readonly string[]): string[] {
  const have = new Set(b);
  return a.filter((x) => !have.has(x));
}

/** A message row as both stores select it (MESSAGE_COLUMNS). */
export interface MessageRow {
  id: number;
  call_id: string;
  ts_us: number;
  src_ip: string;
  src_port: number;
  dst_ip: string;
  dst_port: number;
  transport: string;
  capture_id: number;
  correlation_id: string | null;
  method: string | null;
  status: number | null;
  cseq: string;
  from_user: string;
  to_user: string;
  from_tag: string | null;
  to_tag: string | null;
  x_correlation: string | null;
  raw: Uint8Array;
}

/** A stored row back into a StoredMessage (absent optional fields stay absent). */
export function messageFromRow(r: MessageRow): StoredMessage {
  const m: StoredMessage = {
    id: r.id,
    tsUs: r.ts_us,
    srcIp: r.src_ip,
    srcPort: r.src_port,
    dstIp: r.dst_ip,
    dstPort: r.dst_port,
    transport: r.transport as StoredMessage['transport'],
    captureId: r.capture_id,
    callId: r.call_id,
    cseq: r.cseq,
    fromUser: r.from_user,
    toUser: r.to_user,
    raw: r.raw,
  };
  if (r.correlation_id !== null) m.correlationId = r.correlation_id;
  if (r.method !== null) m.method = r.method;
  if (r.status !== null) m.status = r.status;
  if (r.from_tag !== null) m.fromTag = r.from_tag;
  if (r.to_tag !== null) m.toTag = r.to_tag;
  if (r.x_correlation !== null) m.xCorrelation = r.x_correlation;
  return m;
}

export const MESSAGE_COLUMNS =
  'm.id AS id, c.call_id AS call_id, m.ts_us AS ts_us, m.src_ip AS src_ip, m.src_port AS src_port,' +
  ' m.dst_ip AS dst_ip, m.dst_port AS dst_port, m.transport AS transport, m.capture_id AS capture_id,' +
  ' m.correlation_id AS correlation_id, m.method AS method, m.status AS status, m.cseq AS cseq,' +
  ' m.from_user AS from_user, m.to_user AS to_user, m.from_tag AS from_tag, m.to_tag AS to_tag,' +
  ' m.x_correlation AS x_correlation, m.raw AS raw';

/** Shared by both stores: the stats object from totals, time span and the retention record. */
export function statsFrom(
  totals: { calls: number; messages: number; bytes: number },
  span: { oldest: number | null; newest: number | null },
  retentionJson: string | undefined,
): StoreStats {
  const stats: StoreStats = {
    messages: Number(totals.messages),
    calls: Number(totals.calls),
    bytes: Number(totals.bytes),
    retention: {},
  };
  if (span.oldest !== null) stats.oldestTsUs = Number(span.oldest);
  if (span.newest !== null) stats.newestTsUs = Number(span.newest);
  if (retentionJson !== undefined) {
    const r = JSON.parse(retentionJson) as {
      policy: RetentionPolicy;
      atUs: number;
      removedMessages: number;
      removedCalls: number;
    };
    stats.retention = r.policy;
    stats.lastRetention = { atUs: r.atUs, removedMessages: r.removedMessages, removedCalls: r.removedCalls };
  }
  return stats;
}

// ---- live calls -------------------------------------------------------------------------------

/**
 * The calls `liveCalls` counts, as an index predicate: INVITE dialogs answered and not hung up,
 * or still ringing (CallSummary.status, call-summary.ts: a CANCEL makes a call `cancelled`, a
 * final >= 300 `failed`/`busy`/`cancelled`; a BYE sets `byeTsUs`, which is absent from the state
 * JSON until then). Non-INVITE methods are `answered` on any 2xx (REGISTER, OPTIONS), hence the
 * method test.
 *
 * Both stores keep a partial index on exactly this predicate (capture_calls_live), so the query
 * reads the few live calls, never the millions of finished ones. A partial index needs no schema
 * version: the engine maintains it whoever writes (a switchyard that does not know it included),
 * and a store without it (opened read-only before any newer writer) is answered by the status
 * index, only slower. The query repeats the predicate word for word: SQLite uses a partial index
 * only when each of its terms appears in the query (https://sqlite.org/partialindex.html §3).
 */
export const LIVE_CALL_PREDICATE: Record<Dialect, string> = {
  sqlite:
    "status IN ('answered', 'ringing') AND json_extract(state, '$.anchor.method') = 'INVITE'" +
    " AND json_extract(state, '$.byeTsUs') IS NULL",
  postgres:
    "status IN ('answered', 'ringing') AND (state->'anchor'->>'method') = 'INVITE'" +
    " AND (state->'byeTsUs') IS NULL",
};

export const LIVE_CALL_INDEX = 'capture_calls_live';

/** The DDL of the live-call index (created on open by writers, idempotently). */
export function liveCallIndexDdl(dialect: Dialect): string {
  const columns = dialect === 'sqlite' ? '(first_ts)' : '(first_ts, pk)';
  return `CREATE INDEX IF NOT EXISTS ${LIVE_CALL_INDEX} ON capture_calls ${columns} WHERE ${LIVE_CALL_PREDICATE[dialect]};`;
}

export interface NormalizedLiveQuery {
  sinceUs: number;
  endpoints?: string[];
}

export function normalizeLiveQuery(q: LiveCallsQuery): NormalizedLiveQuery {
  if (typeof q !== 'object' || q === null) throw invalid('liveCalls: query must be an object');
  if (!Number.isSafeInteger(q.sinceUs))
    throw invalid(`liveCalls: sinceUs must be an integer (µs), got ${q.sinceUs}`);
  if (q.endpoints === undefined) return { sinceUs: q.sinceUs };
  if (!Array.isArray(q.endpoints)) throw invalid('liveCalls: endpoints must be an array');
  for (const e of q.endpoints) {
    if (typeof e !== 'string' || e.trim() === '')
      throw invalid('liveCalls: endpoints must be non-empty strings (ip:port)');
  }
  return { sinceUs: q.sinceUs, endpoints: [...new Set(q.endpoints.map((e) => e.trim()))] };
}

/** One live dialog as the stores read it from the live-call index. */
export interface LiveCallRow {
  callId: string;
  status: string;
  endpoints: readonly string[];
  correlation: readonly string[];
}

/**
 * Counts live dialogs per endpoint. Calls are the connected groups of dialogs that share a
 * correlation key or whose key is another's Call-ID (a B-leg's X-CID names the A-leg), found
 * with a union-find over all live dialogs, so a bridged pair counts as two channels, one call.
 */
export function countLiveCalls(
  rows: readonly LiveCallRow[],
  endpoints: readonly string[] | undefined,
): Map<string, LiveCallCount> {
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let root = x;
    for (let p = parent.get(root) ?? root; p !== root; p = parent.get(root) ?? root) root = p;
    // Path compression keeps repeated finds flat.
    for (let y = x; y !== root; ) {
      const next = parent.get(y) ?? root;
      parent.set(y, root);
      y = next;
    }
    return root;
  };
  const union = (a: string, b: string) => {
    const ra = find(a);
    const rb = find(b);
    // The smaller root wins, so groups do not depend on the order rows come in.
    if (ra < rb) parent.set(rb, ra);
    else if (rb < ra) parent.set(ra, rb);
  };
  // Keys and Call-IDs share one namespace: a key equal to a Call-ID links to that dialog.
  for (const r of rows) {
    if (!parent.has(r.callId)) parent.set(r.callId, r.callId);
    for (const k of r.correlation) {
      if (!parent.has(k)) parent.set(k, k);
      union(r.callId, k);
    }
  }
  const wanted = endpoints === undefined ? undefined : new Set(endpoints);
  const acc = new Map<string, { channels: number; ringing: number; groups: Set<string> }>();
  for (const e of wanted ?? []) acc.set(e, { channels: 0, ringing: 0, groups: new Set() });
  for (const r of rows) {
    const group = find(r.callId);
    for (const e of new Set(r.endpoints)) {
      if (wanted && !wanted.has(e)) continue;
      let a = acc.get(e);
      if (!a) {
        a = { channels: 0, ringing: 0, groups: new Set() };
        acc.set(e, a);
      }
      a.channels++;
      if (r.status !== 'answered') a.ringing++;
      a.groups.add(group);
    }
  }
  const out = new Map<string, LiveCallCount>();
  for (const [e, a] of acc) out.set(e, { channels: a.channels, calls: a.groups.size, ringing: a.ringing });
  return out;
}

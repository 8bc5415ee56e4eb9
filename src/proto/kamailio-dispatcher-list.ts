import { fail, ok, type Result } from '../core/result.ts';

/**
 * Parser of the `dispatcher.list` RPC result (Kamailio 5.6 dispatcher.c, ds_rpc_print_set).
 * Shape, as captured from a real Kamailio 5.6.3 (test/fixtures/kamailio/dispatcher-list-*.json):
 *
 *   { NRSETS, RECORDS: [ { SET: { ID, TARGETS: [ { DEST: { URI, FLAGS, PRIORITY,
 *       ATTRS?: { BODY, DUID, MAXLOAD, WEIGHT, RWEIGHT, SOCKET, SOCKNAME, OBPROXY } } } ] } } ] }
 *
 * - ATTRS is absent for a destination whose line has no attrs field, and in `short` mode.
 * - `full` mode adds HOST, IPADDR, PORT, PROTOID, DNSTIME_*; `ds_ping_latency_stats` adds
 *   LATENCY, `ds_hash_size` adds RUNTIME. Unknown members are ignored so those modes parse too.
 * - Sets and destinations come in reverse file order; the order is kept as given.
 * - An empty list is not an empty RECORDS array: Kamailio answers the fault
 *   500 "No Destination Sets" instead, which is the RPC client's business, not this parser's.
 */

/**
 * One destination. Structurally identical to net/kamailio-rpc-types.ts KamailioDestination
 * (net/kamailio-rpc.ts checks that at compile time); declared here so proto does not import net.
 */
export interface ListedDestination {
  setId: number;
  uri: string;
  /** Two letters: A/I/T/D (active, inactive, trying, disabled) then P/X (probing or not). */
  flags: string;
  priority: number;
  /**
   * `body` is the attrs field of the list line as Kamailio kept it ('' when there was none).
   * The numbers are Kamailio's parsed values, present whenever Kamailio reports ATTRS; 0 means
   * "not set in the body". `duid` is present only when non-empty.
   */
  attrs: {
    body: string;
    duid?: string;
    weight?: number;
    rweight?: number;
    maxload?: number;
  };
}

/** First letter: A(ctive) I(nactive) T(rying) D(isabled); second: P(robing) or X (dispatcher.c). */
const FLAGS_PATTERN = /^[AITD][PX]$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isInteger = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value);

function parseAttrs(raw: unknown, where: string): Result<ListedDestination['attrs']> {
  if (raw === undefined) return ok({ body: '' });
  if (!isRecord(raw)) return fail(`${where}.ATTRS is not an object`);
  const body = raw['BODY'] ?? '';
  if (typeof body !== 'string') return fail(`${where}.ATTRS.BODY is not a string`);
  const attrs: ListedDestination['attrs'] = { body };
  const duid = raw['DUID'];
  if (duid !== undefined && duid !== null) {
    if (typeof duid !== 'string') return fail(`${where}.ATTRS.DUID is not a string`);
    if (duid !== '') attrs.duid = duid;
  }
  for (const [member, key] of [
    ['WEIGHT', 'weight'],
    ['RWEIGHT', 'rweight'],
    ['MAXLOAD', 'maxload'],
  ] as const) {
    const value = raw[member];
    if (value === undefined || value === null) continue;
    if (!isInteger(value)) return fail(`${where}.ATTRS.${member} is not an integer`);
    attrs[key] = value;
  }
  return ok(attrs);
}

function parseDest(setId: number, raw: unknown, where: string): Result<ListedDestination> {
  if (!isRecord(raw)) return fail(`${where} is not an object`);
  const dest = raw['DEST'];
  if (!isRecord(dest)) return fail(`${where}.DEST is not an object`);
  const uri = dest['URI'];
  if (typeof uri !== 'string' || uri === '') return fail(`${where}.DEST.URI is not a non-empty string`);
  const flags = dest['FLAGS'];
  if (typeof flags !== 'string' || !FLAGS_PATTERN.test(flags)) {
    return fail(`${where}.DEST.FLAGS is not two letters [AITD][PX]: ${JSON.stringify(flags)?.slice(0, 20)}`);
  }
  const priority = dest['PRIORITY'] ?? 0;
  if (!isInteger(priority)) return fail(`${where}.DEST.PRIORITY is not an integer`);
  const attrs = parseAttrs(dest['ATTRS'], `${where}.DEST`);
  if (!attrs.ok) return attrs;
  return ok({ setId, uri, flags, priority, attrs: attrs.value });
}

/**
 * All destinations of all sets, in Kamailio's order. `result` is the JSON-RPC `result` member
 * of a `dispatcher.list` reply (any mode). Never throws; any shape problem is a `fail` naming
 * the path of the first offending member.
 */
export function parseDispatcherList(result: unknown): Result<ListedDestination[]> {
  if (!isRecord(result)) return fail('result is not an object');
  const records = result['RECORDS'];
  if (!Array.isArray(records)) return fail('result.RECORDS is not an array');
  const out: ListedDestination[] = [];
  for (let i = 0; i < records.length; i++) {
    const record: unknown = records[i];
    const where = `RECORDS[${i}]`;
    if (!isRecord(record)) return fail(`${where} is not an object`);
    const set = record['SET'];
    if (!isRecord(set)) return fail(`${where}.SET is not an object`);
    const setId = set['ID'];
    if (!isInteger(setId)) return fail(`${where}.SET.ID is not an integer`);
    const targets = set['TARGETS'] ?? [];
    if (!Array.isArray(targets)) return fail(`${where}.SET.TARGETS is not an array`);
    for (let j = 0; j < targets.length; j++) {
      const dest = parseDest(setId, targets[j], `${where}.SET.TARGETS[${j}]`);
      if (!dest.ok) return dest;
      out.push(dest.value);
    }
  }
  // NRSETS is not cross-checked: it adds nothing a consumer needs, and a mismatch in some
  // future version must not blind the dispatcher.
  return ok(out);
}

import { isIPv6 } from 'node:net';
import { fail, ok, type Result } from '../core/result.ts';
import { getHeader, getHeaders, getHeaderValues, type SipMessage } from './sip-message.ts';
import {
  type HostType,
  type NameAddr,
  parseHeaderParams,
  parseNameAddr,
  parseUri,
  type Uri,
  uriUser,
} from './sip-uri.ts';

/**
 * Typed accessors for the header fields the product reads, on top of the structural
 * `parseSipMessage`: Call-ID, CSeq, From/To, Via, Max-Forwards, Content-Type, Contact, Date and
 * the Request-URI; and `sipCaptureFields`, the part of a capture record that comes from SIP.
 * Each returns a Result: a malformed or conflicting field is a `fail` with a short reason
 * (RFC 4475 §3.1.2 and §3.3), never an exception.
 */

export interface CSeq {
  seq: number;
  method: string;
}

/** A From or To value: the name-addr plus its `tag`. */
export interface AddressField extends NameAddr {
  tag?: string;
}

export interface ViaEntry {
  /** e.g. `SIP`. */
  protocol: string;
  /** e.g. `2.0`. */
  version: string;
  /** Upper-cased, e.g. `UDP`, `TLS`, `WSS`; unknown transports are kept (RFC 4475 §3.1.1.10). */
  transport: string;
  /** Hostname or IPv4 as written; IPv6 without brackets. */
  host: string;
  hostType: HostType;
  port?: number;
  branch?: string;
  received?: string;
  /** The `rport` value (RFC 3581); `true` when present without one (in a request). */
  rport?: number | true;
  /** Every parameter, names lower-cased, flags ''. */
  params: Map<string, string>;
}

export interface ContentType {
  /** `type/subtype`, lower-cased. */
  mediaType: string;
  type: string;
  subtype: string;
  /** Names lower-cased, quoted values unquoted. */
  params: Map<string, string>;
}

/**
 * The SIP-derived part of a capture record (`CapturedMessage` in src/capture/model.ts, which
 * this must stay assignable to; the proto layer does not import capture).
 */
export interface SipCaptureFields {
  callId: string;
  method?: string;
  status?: number;
  /** `<number> <method>`, leading zeros and LWS normalised: `9 INVITE`. */
  cseq: string;
  /** From/To user part as written (escapes kept, so printable); the TEL number; '' for other URIs or none. */
  fromUser: string;
  toUser: string;
  fromTag?: string;
  toTag?: string;
  xCorrelation?: string;
}

export interface SipCaptureOptions {
  /** Header carrying the B-leg correlation key, e.g. `X-CID`; its first value becomes `xCorrelation`. */
  correlationHeader?: string;
}

const TOKEN = /^[A-Za-z0-9\-.!%*_+`'~]+$/;
/** Call-ID: §25.1 `word ["@" word]`, relaxed to any visible ASCII (real UAs use `=`, `#`, ...). */
const CALL_ID = /^[\x21-\x7e]+$/;
const IPV4 =
  /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;

/**
 * The one value of a single-valued header: undefined when absent, a fail when repeated with
 * different values (RFC 4475 §3.3.8; identical repeats are tolerated).
 */
function single(msg: SipMessage, name: string): Result<string | undefined> {
  const values = getHeaders(msg, name).map((v) => v.trim());
  if (values.length === 0) return ok(undefined);
  if (values.some((v) => v !== values[0])) return fail(`conflicting ${name} headers`);
  return ok(values[0]);
}

function required(msg: SipMessage, name: string): Result<string> {
  const v = single(msg, name);
  if (!v.ok) return v;
  if (v.value === undefined) return fail(`missing ${name}`);
  return ok(v.value);
}

/** Call-ID (§20.8): required, one value, visible ASCII without spaces. */
export function getCallId(msg: SipMessage): Result<string> {
  const v = required(msg, 'Call-ID');
  if (!v.ok) return v;
  if (!CALL_ID.test(v.value)) return fail(`bad Call-ID ${JSON.stringify(v.value.slice(0, 40))}`);
  return ok(v.value);
}

/**
 * A CSeq value (§20.16): `1*DIGIT LWS Method`, the number below 2**31 (§8.1.1.5; leading zeros
 * allowed, RFC 4475 §3.1.1.1), the method a token.
 */
export function parseCSeqValue(value: string): Result<CSeq> {
  const m = /^([0-9]+)[ \t\r\n]+(\S+)$/.exec(value.trim());
  if (!m) return fail(`bad CSeq ${JSON.stringify(value.slice(0, 40))}`);
  const digits = m[1]!.replace(/^0+(?=[0-9])/, '');
  if (digits.length > 10 || Number(digits) >= 2 ** 31)
    return fail(`CSeq number ${m[1]!.slice(0, 30)} too large`);
  if (!TOKEN.test(m[2]!)) return fail(`bad CSeq method ${JSON.stringify(m[2]!.slice(0, 30))}`);
  return ok({ seq: Number(digits), method: m[2]! });
}

/**
 * CSeq: required, one value, valid; in a request its method must equal the request method
 * (RFC 4475 §3.1.2.17-18; methods are case-sensitive).
 */
export function getCSeq(msg: SipMessage): Result<CSeq> {
  const v = required(msg, 'CSeq');
  if (!v.ok) return v;
  const cseq = parseCSeqValue(v.value);
  if (!cseq.ok) return cseq;
  if (msg.kind === 'request' && msg.method !== cseq.value.method) {
    return fail(`CSeq method ${cseq.value.method} does not match request method ${msg.method}`);
  }
  return cseq;
}

function address(msg: SipMessage, name: 'From' | 'To'): Result<AddressField> {
  const v = required(msg, name);
  if (!v.ok) return v;
  const na = parseNameAddr(v.value);
  if (!na.ok) return fail(`bad ${name}: ${na.reason}`);
  const field: AddressField = na.value;
  const tag = na.value.params.get('tag');
  if (tag !== undefined && tag !== '') field.tag = tag;
  return ok(field);
}

/** From (§20.20): required, one value, a valid name-addr / addr-spec. */
export function getFrom(msg: SipMessage): Result<AddressField> {
  return address(msg, 'From');
}

/** To (§20.39): required, one value, a valid name-addr / addr-spec. */
export function getTo(msg: SipMessage): Result<AddressField> {
  return address(msg, 'To');
}

/**
 * One via-parm (§20.42): `protocol / version / transport LWS sent-by *(; param)`, LWS allowed
 * around each `/`, `:`, `;` and `=` (RFC 4475 §3.1.1.1). `received` must be an IP address,
 * `rport` empty or a port.
 */
export function parseViaValue(value: string): Result<ViaEntry> {
  const m =
    /^([^\s/]+)\s*\/\s*([^\s/]+)\s*\/\s*([^\s/;]+)\s+(\[[^\]]*\]|[A-Za-z0-9._-]+)(?:\s*:\s*([0-9]{1,5}))?\s*(.*)$/s.exec(
      value.trim(),
    );
  if (!m) return fail(`bad Via ${JSON.stringify(value.slice(0, 50))}`);
  const [, protocol, version, transport, hostText, portText, rest] = m;
  if (!TOKEN.test(protocol!) || !TOKEN.test(version!) || !TOKEN.test(transport!)) {
    return fail(`bad Via protocol ${JSON.stringify(value.slice(0, 30))}`);
  }
  const uri = parseUri(`sip:${hostText}${portText === undefined ? '' : `:${portText}`}`);
  if (!uri.ok || uri.value.kind !== 'sip')
    return fail(`bad Via sent-by ${JSON.stringify(hostText!.slice(0, 50))}`);
  const params = parseHeaderParams(rest!);
  if (!params.ok) return fail(`bad Via parameters: ${params.reason}`);
  const via: ViaEntry = {
    protocol: protocol!.toUpperCase(),
    version: version!,
    transport: transport!.toUpperCase(),
    host: uri.value.host,
    hostType: uri.value.hostType,
    params: params.value,
  };
  if (uri.value.port !== undefined) via.port = uri.value.port;
  const branch = params.value.get('branch');
  if (branch !== undefined) {
    if (branch === '') return fail('Via branch without a value');
    via.branch = branch;
  }
  const received = params.value.get('received');
  if (received !== undefined) {
    const bare = received.replace(/^\[(.*)\]$/, '$1');
    if (!IPV4.test(bare) && !isIPv6(bare)) return fail(`bad Via received ${received.slice(0, 50)}`);
    via.received = bare;
  }
  const rport = params.value.get('rport');
  if (rport !== undefined) {
    if (rport === '') via.rport = true;
    else if (/^[0-9]{1,5}$/.test(rport) && Number(rport) <= 65535) via.rport = Number(rport);
    else return fail(`bad Via rport ${rport.slice(0, 20)}`);
  }
  return ok(via);
}

/** Every Via value, topmost first, across repeated and comma-joined Via lines; [] when none. */
export function getVias(msg: SipMessage): Result<ViaEntry[]> {
  const out: ViaEntry[] = [];
  for (const value of getHeaderValues(msg, 'Via')) {
    if (value === '') return fail('empty Via value');
    const via = parseViaValue(value);
    if (!via.ok) return via;
    out.push(via.value);
  }
  return ok(out);
}

/** Max-Forwards (§20.22): undefined when absent, else one integer 0..255 (leading zeros allowed). */
export function getMaxForwards(msg: SipMessage): Result<number | undefined> {
  const v = single(msg, 'Max-Forwards');
  if (!v.ok) return v;
  if (v.value === undefined) return ok(undefined);
  if (!/^[0-9]+$/.test(v.value)) return fail(`bad Max-Forwards ${JSON.stringify(v.value.slice(0, 20))}`);
  const n = Number(v.value.replace(/^0+(?=[0-9])/, '').slice(0, 6));
  if (n > 255) return fail(`Max-Forwards ${v.value.slice(0, 20)} out of range`);
  return ok(n);
}

/** Content-Type (§20.15) `type/subtype *(; param)`: undefined when absent. */
export function getContentType(msg: SipMessage): Result<ContentType | undefined> {
  const v = single(msg, 'Content-Type');
  if (!v.ok) return v;
  if (v.value === undefined) return ok(undefined);
  const m = /^([^\s/;]+)\s*\/\s*([^\s/;]+)(.*)$/s.exec(v.value);
  if (!m || !TOKEN.test(m[1]!) || !TOKEN.test(m[2]!)) {
    return fail(`bad Content-Type ${JSON.stringify(v.value.slice(0, 40))}`);
  }
  const params = parseHeaderParams(m[3]!);
  if (!params.ok) return fail(`bad Content-Type parameters: ${params.reason}`);
  const type = m[1]!.toLowerCase();
  const subtype = m[2]!.toLowerCase();
  return ok({ mediaType: `${type}/${subtype}`, type, subtype, params: params.value });
}

/**
 * Contact values (§20.10): `'*'` for the wildcard (alone, as in an unregister), else every
 * name-addr across lines and commas; [] when absent.
 */
export function getContacts(msg: SipMessage): Result<'*' | NameAddr[]> {
  const values = getHeaderValues(msg, 'Contact');
  if (values.length === 1 && values[0]!.replace(/;.*$/s, '').trim() === '*') return ok('*');
  const out: NameAddr[] = [];
  for (const value of values) {
    const na = parseNameAddr(value);
    if (!na.ok) return fail(`bad Contact: ${na.reason}`);
    out.push(na.value);
  }
  return ok(out);
}

/**
 * The Request-URI of a request, parsed. A SIP URI carrying `?headers` fails: they are not
 * allowed there (RFC 3261 §19.1.1, RFC 4475 §3.1.2.11).
 */
export function getRequestUri(msg: SipMessage): Result<Uri> {
  if (msg.kind !== 'request' || msg.requestUri === undefined) return fail('not a request');
  const uri = parseUri(msg.requestUri);
  if (!uri.ok) return fail(`bad Request-URI: ${uri.reason}`);
  if (uri.value.kind === 'sip' && uri.value.headers.length > 0) return fail('headers in the Request-URI');
  return uri;
}

const WKDAY = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * Date (§20.17): undefined when absent, else an RFC 1123 date whose zone is exactly `GMT`
 * (RFC 4475 §3.1.2.12 rejects `EST`; `UT`, `UTC` fail too).
 */
export function getDate(msg: SipMessage): Result<Date | undefined> {
  const v = single(msg, 'Date');
  if (!v.ok) return v;
  if (v.value === undefined) return ok(undefined);
  const m =
    /^([A-Za-z]{3}), ([0-9]{2}) ([A-Za-z]{3}) ([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) (\S+)$/.exec(
      v.value,
    );
  if (!m) return fail(`bad Date ${JSON.stringify(v.value.slice(0, 40))}`);
  if (m[8] !== 'GMT') return fail(`Date time zone ${m[8]!.slice(0, 10)} is not GMT`);
  const month = MONTHS.indexOf(m[3]!);
  const [day, year, h, min, sec] = [m[2], m[4], m[5], m[6], m[7]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const date = new Date(Date.UTC(year, month, day, h, min, sec));
  if (
    month === -1 ||
    !WKDAY.includes(m[1]!) ||
    h > 23 ||
    min > 59 ||
    sec > 60 ||
    date.getUTCDate() !== day ||
    date.getUTCMonth() !== month
  ) {
    return fail(`bad Date ${JSON.stringify(v.value.slice(0, 40))}`);
  }
  return ok(date);
}

/**
 * What a capture record takes from SIP, or why the message cannot be stored: a missing, repeated
 * or malformed Call-ID, CSeq, From or To fails (the capture server counts these drops by
 * reason). Users are the From/To URI users as written; tags only when present.
 */
export function sipCaptureFields(msg: SipMessage, opts: SipCaptureOptions = {}): Result<SipCaptureFields> {
  const callId = getCallId(msg);
  if (!callId.ok) return callId;
  const cseq = getCSeq(msg);
  if (!cseq.ok) return cseq;
  const from = getFrom(msg);
  if (!from.ok) return from;
  const to = getTo(msg);
  if (!to.ok) return to;
  const fields: SipCaptureFields = {
    callId: callId.value,
    cseq: `${cseq.value.seq} ${cseq.value.method}`,
    fromUser: uriUser(from.value.uri) ?? '',
    toUser: uriUser(to.value.uri) ?? '',
  };
  if (msg.kind === 'request') fields.method = msg.method!;
  else fields.status = msg.status!;
  if (from.value.tag !== undefined) fields.fromTag = from.value.tag;
  if (to.value.tag !== undefined) fields.toTag = to.value.tag;
  if (opts.correlationHeader !== undefined) {
    const x = getHeader(msg, opts.correlationHeader)?.trim();
    if (x !== undefined && x !== '') fields.xCorrelation = x;
  }
  return ok(fields);
}

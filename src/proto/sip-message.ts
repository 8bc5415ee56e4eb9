import { ErrorCode, SwitchyardError } from '../core/errors.ts';
import { fail, ok, type Result } from '../core/result.ts';

/**
 * A small SIP message parser and an OPTIONS builder (RFC 3261), enough for health probes and
 * for reading what Kamailio, SIPp and Asterisk send. It is structural: start line, headers
 * (names canonicalised, folded lines joined), body framed by Content-Length in bytes, and the
 * splitting of comma-separated list headers. Header values are kept as text; URIs and
 * name-addr are in sip-uri.ts, typed field accessors (Call-ID, CSeq, From/To, Via, ...) in
 * sip-fields.ts. Never throws on input: every problem is a `fail` with a short reason.
 * Reference: docs/reference/sip-parser.md.
 */

export interface SipMessage {
  kind: 'request' | 'response';
  method?: string;
  requestUri?: string;
  status?: number;
  reason?: string;
  /** In wire order, names canonicalised (`i` → `Call-ID`, `cseq` → `CSeq`), values trimmed and unfolded. */
  headers: Array<[name: string, value: string]>;
  /** Exactly Content-Length bytes (all remaining bytes when absent); a view into the input. */
  body: Uint8Array;
}

export interface SipParseOptions {
  /** Refuse larger inputs (UDP datagrams are at most 65535 bytes). */
  maxBytes?: number;
  maxHeaders?: number;
}

export const DEFAULT_MAX_SIP_BYTES = 65_535;
export const DEFAULT_MAX_SIP_HEADERS = 256;

/** RFC 3261 §7.3.3 compact forms, plus those registered later (RFC 3265, 3515, 3841, 3892, 4028, 4474). */
const COMPACT_FORMS: ReadonlyMap<string, string> = new Map(
  Object.entries({
    a: 'Accept-Contact',
    b: 'Referred-By',
    c: 'Content-Type',
    d: 'Request-Disposition',
    e: 'Content-Encoding',
    f: 'From',
    i: 'Call-ID',
    j: 'Reject-Contact',
    k: 'Supported',
    l: 'Content-Length',
    m: 'Contact',
    n: 'Identity-Info',
    o: 'Event',
    r: 'Refer-To',
    s: 'Subject',
    t: 'To',
    u: 'Allow-Events',
    v: 'Via',
    x: 'Session-Expires',
    y: 'Identity',
  }),
);

/** Names whose usual spelling is not plain Title-Case-Per-Word. */
const IRREGULAR_NAMES: ReadonlyMap<string, string> = new Map(
  [
    'Call-ID',
    'CSeq',
    'WWW-Authenticate',
    'MIME-Version',
    'RAck',
    'RSeq',
    'SIP-ETag',
    'SIP-If-Match',
    'Min-SE',
    'P-Asserted-Identity',
    'P-Preferred-Identity',
  ].map((n) => [n.toLowerCase(), n]),
);

const TOKEN = "[A-Za-z0-9\\-.!%*_+`'~]+";
const TOKEN_PATTERN = new RegExp(`^${TOKEN}$`);
const HEADER_LINE = new RegExp(`^(${TOKEN})[ \\t]*:[ \\t]*(.*)$`, 's');
/** Request-URI = SIP-URI / SIPS-URI / absoluteURI: all start with `scheme ":"` (RFC 3261 §25.1). */
const REQUEST_LINE = new RegExp(`^(${TOKEN}) ([A-Za-z][A-Za-z0-9+.-]*:[^ \\t]+) (SIP/2\\.0)$`, 'i');
const OTHER_VERSION = new RegExp(
  `^${TOKEN} [^ \\t]+ (SIP/[0-9]+\\.[0-9]+)$|^(SIP/[0-9]+\\.[0-9]+) [0-9]{3}(?: |$)`,
  'i',
);
const STATUS_LINE = /^(SIP\/2\.0) ([1-6][0-9][0-9])(?: (.*))?$/i;
const CSEQ_PATTERN = new RegExp(`^([0-9]{1,10})[ \\t]+(${TOKEN})$`);

/**
 * The canonical spelling of a header name: compact forms expanded, known names as registered
 * (`Call-ID`, `CSeq`, `WWW-Authenticate`), others Title-Cased per dash-separated word.
 */
export function canonicalHeaderName(name: string): string {
  const lower = name.toLowerCase();
  const compact = COMPACT_FORMS.get(lower);
  if (compact !== undefined) return compact;
  const irregular = IRREGULAR_NAMES.get(lower);
  if (irregular !== undefined) return irregular;
  return lower.replace(/(^|-)([a-z])/g, (_m, dash: string, ch: string) => dash + ch.toUpperCase());
}

/** The first value of a header (any spelling or compact form of `name`), or undefined. */
export function getHeader(msg: SipMessage, name: string): string | undefined {
  const canonical = canonicalHeaderName(name);
  for (const [n, v] of msg.headers) if (n === canonical) return v;
  return undefined;
}

/** Every value of a header, in order (one entry per header line; commas are not split here). */
export function getHeaders(msg: SipMessage, name: string): string[] {
  const canonical = canonicalHeaderName(name);
  return msg.headers.filter(([n]) => n === canonical).map(([, v]) => v);
}

const LF = 0x0a;
const CR = 0x0d;
const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/** Index just past the empty line that ends the header block, and where that block ends. */
function findHeaderEnd(buf: Uint8Array, from: number): { headerEnd: number; bodyStart: number } | undefined {
  for (let i = buf.indexOf(LF, from); i !== -1; i = buf.indexOf(LF, i + 1)) {
    const lineEnd = i > from && buf[i - 1] === CR ? i - 1 : i;
    if (buf[i + 1] === LF) return { headerEnd: lineEnd, bodyStart: i + 2 };
    if (buf[i + 1] === CR && buf[i + 2] === LF) return { headerEnd: lineEnd, bodyStart: i + 3 };
  }
  return undefined;
}

/**
 * Parses one SIP message from a datagram (or one framed message from a stream).
 * - CRLFs before the start line are skipped (RFC 3261 §7.5); a CRLF-only keepalive is a fail.
 * - Lines may end in CRLF or a bare LF; folded header lines (leading SP/HTAB) are joined with
 *   one space (§7.3.1).
 * - Content-Length is counted in bytes (§20.14); bytes after it are ignored (§18.3, datagrams);
 *   fewer bytes than it promises is a fail; without it the body is the rest of the input.
 */
export function parseSipMessage(buf: Uint8Array, opts: SipParseOptions = {}): Result<SipMessage> {
  if (!(buf instanceof Uint8Array)) return fail('input is not bytes');
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_SIP_BYTES;
  const maxHeaders = opts.maxHeaders ?? DEFAULT_MAX_SIP_HEADERS;
  if (buf.length > maxBytes) return fail(`message of ${buf.length} bytes exceeds ${maxBytes}`);
  let start = 0;
  while (start < buf.length && (buf[start] === CR || buf[start] === LF)) start++;
  if (start === buf.length) return fail('empty message');
  const end = findHeaderEnd(buf, start);
  if (!end) return fail('no empty line after the headers');
  const head = buf.subarray(start, end.headerEnd);
  if (head.includes(0) && !nulsAreQuotedPairs(head)) return fail('NUL byte in the header section');
  const lines = decoder.decode(head).split('\n');
  const startLine = stripCr(lines[0] ?? '');
  if (startLine.includes('\r')) return fail('bare CR in the start line');

  let msg: SipMessage;
  const status = STATUS_LINE.exec(startLine);
  if (status) {
    msg = { kind: 'response', status: Number(status[2]), reason: status[3] ?? '', headers: [], body: buf };
  } else {
    const request = REQUEST_LINE.exec(startLine);
    if (!request) {
      const version = OTHER_VERSION.exec(startLine);
      const v = version?.[1] ?? version?.[2];
      // RFC 3261 §8.2.1 / RFC 4475 §3.1.2.16: a server answers 505; here it is a parse failure.
      if (v !== undefined && v.toUpperCase() !== 'SIP/2.0') {
        return fail(`unsupported version ${v} in start line`);
      }
      return fail(`bad start line: ${JSON.stringify(startLine.slice(0, 60))}`);
    }
    msg = { kind: 'request', method: request[1]!, requestUri: request[2]!, headers: [], body: buf };
  }

  for (let i = 1; i < lines.length; i++) {
    const line = stripCr(lines[i]!);
    if (line.includes('\r')) return fail(`bare CR in header line ${i}`);
    if (line.startsWith(' ') || line.startsWith('\t')) {
      const last = msg.headers[msg.headers.length - 1];
      if (!last) return fail('continuation line before the first header');
      const more = line.trim();
      if (more !== '') last[1] = last[1] === '' ? more : `${last[1]} ${more}`;
      continue;
    }
    const header = HEADER_LINE.exec(line);
    if (!header) return fail(`bad header line ${i}: ${JSON.stringify(line.slice(0, 40))}`);
    if (msg.headers.length >= maxHeaders) return fail(`more than ${maxHeaders} headers`);
    msg.headers.push([canonicalHeaderName(header[1]!), header[2]!.replace(/[ \t]+$/, '')]);
  }

  const available = buf.length - end.bodyStart;
  let contentLength: number | undefined;
  for (const value of getHeaders(msg, 'Content-Length')) {
    if (!/^[0-9]{1,10}$/.test(value)) return fail(`bad Content-Length ${JSON.stringify(value.slice(0, 20))}`);
    const n = Number(value);
    if (contentLength !== undefined && contentLength !== n) return fail('conflicting Content-Length headers');
    contentLength = n;
  }
  if (contentLength !== undefined && contentLength > available) {
    return fail(`body has ${available} bytes, Content-Length says ${contentLength}`);
  }
  msg.body = buf.subarray(end.bodyStart, end.bodyStart + (contentLength ?? available));
  return ok(msg);
}

/**
 * True when every NUL of the header section is the second octet of a quoted-pair (`\` NUL)
 * inside a quoted string, the only place RFC 3261 §25.1 admits one (RFC 4475 §3.1.1.2 has it in
 * a display name). The start line never may hold one.
 */
function nulsAreQuotedPairs(head: Uint8Array): boolean {
  let line = 0;
  let quoted = false;
  for (let i = 0; i < head.length; i++) {
    const b = head[i];
    if (b === LF) {
      line++;
      // A folded line (leading SP/HTAB) continues the header, and a quoted string with it.
      if (head[i + 1] !== 0x20 && head[i + 1] !== 0x09) quoted = false;
    } else if (b === 0) {
      return false;
    } else if (line > 0 && b === 0x22) {
      quoted = !quoted;
    } else if (line > 0 && quoted && b === 0x5c && head[i + 1] !== CR && head[i + 1] !== LF) {
      i++; // the escaped octet, NUL included
    }
  }
  return true;
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/**
 * Splits a comma-separated header value into its elements (RFC 3261 §7.3.1): commas inside a
 * quoted string (with `\` escapes) or inside `<...>` do not split. Each element is trimmed of
 * SP/HTAB; empty elements (`a,,b`) are kept as '' so a typed parser can reject them. Nothing
 * but the separating commas and that surrounding whitespace is dropped.
 */
export function splitHeaderValues(value: string): string[] {
  const out: string[] = [];
  let state: 'plain' | 'quoted' | 'angle' = 'plain';
  let from = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (state === 'quoted') {
      if (ch === '\\') i++;
      else if (ch === '"') state = 'plain';
    } else if (state === 'angle') {
      if (ch === '>') state = 'plain';
    } else if (ch === '"') state = 'quoted';
    else if (ch === '<') state = 'angle';
    else if (ch === ',') {
      out.push(trimLws(value.slice(from, i)));
      from = i + 1;
    }
  }
  out.push(trimLws(value.slice(from)));
  return out;
}

function trimLws(text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, '');
}

/**
 * Headers whose value is a comma-separated list (RFC 3261 §20 and common extensions). Any
 * other header, unknown ones included, is one value even if it holds commas: WWW-Authenticate,
 * Authorization, Proxy-Authenticate and Proxy-Authorization (§7.3.1), Date, Subject, Call-ID...
 * RFC 4475 §3.1.1.1 has an unknown header whose value `;;,,;;,;` must stay whole.
 */
export const LIST_HEADERS: ReadonlySet<string> = new Set([
  'Accept',
  'Accept-Contact',
  'Accept-Encoding',
  'Accept-Language',
  'Accept-Resource-Priority',
  'Alert-Info',
  'Allow',
  'Allow-Events',
  'Call-Info',
  'Contact',
  'Content-Encoding',
  'Content-Language',
  'Error-Info',
  'History-Info',
  'In-Reply-To',
  'P-Asserted-Identity',
  'P-Associated-URI',
  'P-Preferred-Identity',
  'Path',
  'Proxy-Require',
  'Reason',
  'Record-Route',
  'Reject-Contact',
  'Request-Disposition',
  'Require',
  'Resource-Priority',
  'Route',
  'Security-Client',
  'Security-Server',
  'Security-Verify',
  'Service-Route',
  'Supported',
  'Unsupported',
  'Via',
  'Warning',
]);

/** Whether a header (any spelling or compact form) is a comma-separated list. */
export function isListHeader(name: string): boolean {
  return LIST_HEADERS.has(canonicalHeaderName(name));
}

/**
 * Every value of a header across its repeated lines, in wire order: list headers split at
 * their commas ({@link splitHeaderValues}, empty elements kept as ''), others one per line.
 */
export function getHeaderValues(msg: SipMessage, name: string): string[] {
  const values = getHeaders(msg, name);
  return isListHeader(name) ? values.flatMap(splitHeaderValues) : values;
}

export interface ViaValue {
  /** e.g. `SIP/2.0/UDP`. */
  protocol: string;
  /** host[:port] as written, IPv6 in brackets. */
  sentBy: string;
  /** Parameter names lower-cased; a flag parameter (`;rport`) has value ''. */
  params: Map<string, string>;
}

/** The topmost Via of a message (first Via header, first comma-separated value), or undefined. */
export function topVia(msg: SipMessage): ViaValue | undefined {
  const raw = getHeader(msg, 'Via');
  if (raw === undefined) return undefined;
  const value = splitHeaderValues(raw)[0]!;
  // via-parm = sent-protocol LWS sent-by *( SEMI via-params ) (RFC 3261 §20.42, §25.1)
  const m =
    /^([A-Za-z0-9.!%*_+`'~-]+[ \t]*\/[ \t]*[A-Za-z0-9.!%*_+`'~-]+[ \t]*\/[ \t]*[A-Za-z0-9.!%*_+`'~-]+)[ \t]+([^;\s]+)[ \t]*(.*)$/s.exec(
      value,
    );
  if (!m || (m[3] !== '' && !m[3]!.startsWith(';'))) return undefined;
  const params = new Map<string, string>();
  for (const part of m[3]!.split(';').slice(1)) {
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (name === '') continue;
    if (!params.has(name)) params.set(name, eq === -1 ? '' : part.slice(eq + 1).trim());
  }
  return { protocol: m[1]!.replace(/[ \t]/g, '').toUpperCase(), sentBy: m[2]!, params };
}

/** CSeq as number and method (RFC 3261 §20.16), or undefined when malformed. */
export function parseCSeq(value: string | undefined): { seq: number; method: string } | undefined {
  if (value === undefined) return undefined;
  const m = CSEQ_PATTERN.exec(value.trim());
  if (!m) return undefined;
  const seq = Number(m[1]);
  return seq < 2 ** 31 ? { seq, method: m[2]! } : undefined;
}

export interface OptionsRequestParams {
  /** `sip:host[:port][;params]` of the peer; also the To URI. */
  targetUri: string;
  /** The address the request is sent from (goes into Via, From and Contact). */
  localAddress: string;
  localPort: number;
  /** Must start with the RFC 3261 magic cookie `z9hG4bK` (§8.1.1.7). */
  branch: string;
  callId: string;
  fromTag: string;
  cseq: number;
  /** Default 70 (§8.1.1.6). */
  maxForwards?: number;
  /** Added as User-Agent when given. */
  userAgent?: string;
}

const SIP_URI_PATTERN = /^sip:[^\s<>"]+$/i;
const BRANCH_PATTERN = /^z9hG4bK[A-Za-z0-9\-.!%*_+`'~]{1,120}$/;
/** Call-ID = word [ "@" word ] (§25.1), printable ASCII without SP. */
const CALL_ID_PATTERN =
  /^[A-Za-z0-9\-.!%*_+`'~()<>:\\"/[\]?{}]{1,200}(@[A-Za-z0-9\-.!%*_+`'~()<>:\\"/[\]?{}]{1,200})?$/;
const HOSTNAME_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const IPV4_PATTERN =
  /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;

function invalid(what: string, value: unknown): never {
  throw new SwitchyardError(
    ErrorCode.INVALID_ARGUMENT,
    `buildOptionsRequest: invalid ${what} ${JSON.stringify(value)}`,
  );
}

/** host as it appears in a URI or Via: IPv6 in brackets. */
export function formatHost(address: string): string {
  return address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
}

function checkHost(address: string): void {
  if (typeof address !== 'string') invalid('localAddress', address);
  const isV6 = address.includes(':') && /^[0-9A-Fa-f:.]+$/.test(address.replace(/^\[|\]$/g, ''));
  if (!isV6 && !IPV4_PATTERN.test(address) && !isHostname(address)) invalid('localAddress', address);
}

function isHostname(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.endsWith('.') ? name.slice(0, -1).split('.') : name.split('.');
  return labels.every((label) => HOSTNAME_LABEL.test(label));
}

/**
 * An out-of-dialog OPTIONS request (RFC 3261 §11) as text, ready to send over UDP. Every
 * argument is validated (no CR/LF or other injection can reach the wire); invalid ones throw
 * SY_ERR_INVALID_ARGUMENT, as they are programmer errors. Via carries `rport` (RFC 3581) so the
 * reply comes back to the source port even through NAT.
 */
export function buildOptionsRequest(p: OptionsRequestParams): string {
  if (typeof p.targetUri !== 'string' || !SIP_URI_PATTERN.test(p.targetUri) || p.targetUri.length > 1024) {
    invalid('targetUri', p.targetUri);
  }
  checkHost(p.localAddress);
  if (!Number.isInteger(p.localPort) || p.localPort < 1 || p.localPort > 65535)
    invalid('localPort', p.localPort);
  if (typeof p.branch !== 'string' || !BRANCH_PATTERN.test(p.branch)) invalid('branch', p.branch);
  if (typeof p.callId !== 'string' || !CALL_ID_PATTERN.test(p.callId)) invalid('callId', p.callId);
  if (typeof p.fromTag !== 'string' || !TOKEN_PATTERN.test(p.fromTag) || p.fromTag.length > 128) {
    invalid('fromTag', p.fromTag);
  }
  // §8.1.1.5: the sequence number MUST be expressible as a 32-bit unsigned integer and less than 2**31.
  if (!Number.isInteger(p.cseq) || p.cseq < 0 || p.cseq >= 2 ** 31) invalid('cseq', p.cseq);
  const maxForwards = p.maxForwards ?? 70;
  if (!Number.isInteger(maxForwards) || maxForwards < 0 || maxForwards > 255)
    invalid('maxForwards', maxForwards);
  if (p.userAgent !== undefined && !/^[\x20-\x7e]{1,128}$/.test(p.userAgent))
    invalid('userAgent', p.userAgent);
  const host = formatHost(p.localAddress);
  const lines = [
    `OPTIONS ${p.targetUri} SIP/2.0`,
    `Via: SIP/2.0/UDP ${host}:${p.localPort};rport;branch=${p.branch}`,
    `Max-Forwards: ${maxForwards}`,
    `From: <sip:switchyard@${host}>;tag=${p.fromTag}`,
    `To: <${p.targetUri}>`,
    `Call-ID: ${p.callId}`,
    `CSeq: ${p.cseq} OPTIONS`,
    `Contact: <sip:switchyard@${host}:${p.localPort}>`,
    'Accept: application/sdp',
    ...(p.userAgent === undefined ? [] : [`User-Agent: ${p.userAgent}`]),
    'Content-Length: 0',
  ];
  return `${lines.join('\r\n')}\r\n\r\n`;
}

import { isIPv6 } from 'node:net';
import { fail, ok, type Result } from '../core/result.ts';

/**
 * SIP, SIPS and TEL URIs (RFC 3261 §19.1, §25.1; RFC 3966) and the name-addr / addr-spec
 * values of From, To, Contact, Route and Record-Route (§20.10), with header parameters.
 * Pure functions on strings; never throws on input: every problem is a `fail` with a short
 * reason. Other schemes (`http:`, `isbn:`, ...) parse as an opaque {@link AbsoluteUri}, as a
 * proxy must carry them (RFC 4475 §3.3.4).
 */

export type HostType = 'ipv4' | 'ipv6' | 'hostname';

export interface SipUri {
  kind: 'sip';
  scheme: 'sip' | 'sips';
  /** The user part with %HH escapes decoded once (`sip:%75ser@h` → `user`); may hold any character, NUL included. */
  user?: string;
  /** The user part exactly as written, escapes kept: printable, safe to store and show. */
  userRaw?: string;
  /** The password part, escapes decoded. */
  password?: string;
  /** Hostname or IPv4 as written; an IPv6 reference without its brackets. */
  host: string;
  hostType: HostType;
  port?: number;
  /** URI parameters in order of first appearance: names lower-cased, names and values unescaped, a flag (`;lr`) is ''. */
  params: Map<string, string>;
  /** `?name=value&...` headers in order, unescaped. */
  headers: Array<[name: string, value: string]>;
}

export interface TelUri {
  kind: 'tel';
  scheme: 'tel';
  /** The telephone-subscriber as written, e.g. `+1-201-555-0123` or `7042`. */
  number: string;
  /** `;name=value` parameters: names lower-cased, a flag is ''. */
  params: Map<string, string>;
}

/** Any other absoluteURI, kept opaque: `http://www.example.com`, `isbn:2983792873`. */
export interface AbsoluteUri {
  kind: 'absolute';
  /** Lower-cased. */
  scheme: string;
  /** Everything after the first colon, as written. */
  opaque: string;
}

export type Uri = SipUri | TelUri | AbsoluteUri;

export interface NameAddr {
  /** Unquoted (quoted-pairs resolved) or the token words joined by one space; absent when none was given. */
  displayName?: string;
  uri: Uri;
  /** True for the `<...>` form (name-addr), false for a bare addr-spec. */
  angle: boolean;
  /**
   * Header parameters (`;tag=...`), names lower-cased, quoted values unquoted, a flag is ''.
   * For a bare addr-spec every `;param` is a header parameter, not a URI one (RFC 3261 §20.10).
   */
  params: Map<string, string>;
}

const ALNUM = 'A-Za-z0-9';
const UNRESERVED = `${ALNUM}\\-_.!~*'()`;
const TOKEN_CHARS = `${ALNUM}\\-.!%*_+\`'~`;
const TOKEN = new RegExp(`^[${TOKEN_CHARS}]+$`);
/** Characters that may appear unescaped in each URI component (RFC 3261 §25.1). */
const USER_SAFE = new RegExp(`^[${UNRESERVED}&=+$,;?/]$`);
const PASSWORD_SAFE = new RegExp(`^[${UNRESERVED}&=+$,]$`);
const PARAM_SAFE = new RegExp(`^[${UNRESERVED}\\[\\]/:&+$]$`);
const HEADER_SAFE = new RegExp(`^[${UNRESERVED}\\[\\]/?:+$]$`);
const USERINFO = new RegExp(`^[${UNRESERVED}%&=+$,;?/:]*$`);
const USER_CHARS = new RegExp(`^[${UNRESERVED}%&=+$,;?/]+$`);
const PASSWORD_CHARS = new RegExp(`^[${UNRESERVED}%&=+$,]*$`);
const PARAM_CHARS = new RegExp(`^[${UNRESERVED}%\\[\\]/:&+$]*$`);
const HEADER_CHARS = new RegExp(`^[${UNRESERVED}%\\[\\]/?:+$]*$`);
const IPV4 =
  /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;
/** Labels of letters, digits and hyphens (underscore tolerated, as SRV-style names use it). */
const HOSTNAME =
  /^([A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?\.?$/;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
/** global-number / local-number (RFC 3966 §3); the digit checks are separate to keep matching linear. */
const TEL_GLOBAL = /^\+[0-9().-]+$/;
const TEL_LOCAL = /^[0-9A-Fa-f*#().-]+$/;
const TEL_PNAME = new RegExp(`^[${ALNUM}-]+$`);
const WS = /[\s\x00-\x1f\x7f]/;
const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
const encoder = new TextEncoder();

/** Decodes %HH escapes once; undefined when a `%` is not followed by two hex digits. */
export function unescapeUriPart(text: string): string | undefined {
  if (!text.includes('%')) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x25) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (ch < 0x80) {
      bytes.push(ch);
    } else {
      const cp = text.codePointAt(i)!;
      if (cp > 0xffff) i++;
      bytes.push(...encoder.encode(String.fromCodePoint(cp)));
    }
  }
  return decoder.decode(new Uint8Array(bytes));
}

/** Escapes every character not matched by `safe` as UTF-8 %HH (upper-case hex). */
function escapeWith(text: string, safe: RegExp): string {
  let out = '';
  for (const ch of text) {
    if (safe.test(ch)) out += ch;
    else for (const b of encoder.encode(ch)) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function parseHost(text: string): Result<{ host: string; hostType: HostType; port?: number }> {
  let host: string;
  let hostType: HostType;
  let rest: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) return fail('unterminated IPv6 reference');
    host = text.slice(1, close);
    if (!isIPv6(host)) return fail(`bad IPv6 address ${JSON.stringify(host.slice(0, 50))}`);
    hostType = 'ipv6';
    rest = text.slice(close + 1);
  } else {
    const colon = text.indexOf(':');
    host = colon === -1 ? text : text.slice(0, colon);
    rest = colon === -1 ? '' : text.slice(colon);
    if (host === '') return fail('empty host');
    if (/^[0-9.]+$/.test(host)) {
      if (!IPV4.test(host)) return fail(`bad IPv4 address ${JSON.stringify(host.slice(0, 50))}`);
      hostType = 'ipv4';
    } else {
      if (host.length > 255 || !HOSTNAME.test(host))
        return fail(`bad host ${JSON.stringify(host.slice(0, 50))}`);
      hostType = 'hostname';
    }
  }
  if (rest === '') return ok({ host, hostType });
  if (!/^:[0-9]{1,5}$/.test(rest)) return fail(`bad port ${JSON.stringify(rest.slice(0, 20))}`);
  const port = Number(rest.slice(1));
  if (port > 65535) return fail(`port ${port} out of range`);
  return ok({ host, hostType, port });
}

/** `;a=b;c` URI parameters (text starts after the first `;`). */
function parseUriParams(text: string, chars: RegExp, what: string): Result<Map<string, string>> {
  const params = new Map<string, string>();
  for (const part of text.split(';')) {
    if (part === '') return fail(`empty ${what} parameter`);
    const eq = part.indexOf('=');
    const rawName = eq === -1 ? part : part.slice(0, eq);
    const rawValue = eq === -1 ? '' : part.slice(eq + 1);
    if (rawName === '' || !chars.test(rawName) || !chars.test(rawValue)) {
      return fail(`bad ${what} parameter ${JSON.stringify(part.slice(0, 40))}`);
    }
    const name = unescapeUriPart(rawName);
    const value = unescapeUriPart(rawValue);
    if (name === undefined || value === undefined) return fail(`bad escape in ${what} parameter`);
    const key = name.toLowerCase();
    if (!params.has(key)) params.set(key, value);
  }
  return ok(params);
}

/** A `sip:` or `sips:` URI (RFC 3261 §19.1.1). Fails on anything else, including other schemes. */
export function parseSipUri(text: string): Result<SipUri> {
  if (typeof text !== 'string') return fail('URI is not a string');
  const m = /^(sips?):/i.exec(text);
  if (!m) return fail('not a sip: or sips: URI');
  if (WS.test(text)) return fail('whitespace or control character in URI');
  const scheme = m[1]!.toLowerCase() as 'sip' | 'sips';
  let rest = text.slice(m[0].length);
  if (rest === '') return fail('empty URI after the scheme');

  let userRaw: string | undefined;
  let passwordRaw: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1 && USERINFO.test(rest.slice(0, at))) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userinfo.indexOf(':');
    userRaw = colon === -1 ? userinfo : userinfo.slice(0, colon);
    if (colon !== -1) passwordRaw = userinfo.slice(colon + 1);
    if (!USER_CHARS.test(userRaw)) return fail('empty or bad user part');
    if (passwordRaw !== undefined && !PASSWORD_CHARS.test(passwordRaw)) return fail('bad password');
  }

  const q = rest.indexOf('?');
  const beforeHeaders = q === -1 ? rest : rest.slice(0, q);
  const headersText = q === -1 ? undefined : rest.slice(q + 1);
  // An IPv6 reference has no ';', so the first ';' ends host[:port].
  const semi = beforeHeaders.indexOf(';');
  const hostport = semi === -1 ? beforeHeaders : beforeHeaders.slice(0, semi);
  const host = parseHost(hostport);
  if (!host.ok) return host;

  let params = new Map<string, string>();
  if (semi !== -1) {
    const p = parseUriParams(beforeHeaders.slice(semi + 1), PARAM_CHARS, 'URI');
    if (!p.ok) return p;
    params = p.value;
  }
  const headers: Array<[string, string]> = [];
  if (headersText !== undefined) {
    for (const part of headersText.split('&')) {
      const eq = part.indexOf('=');
      const rawName = eq === -1 ? part : part.slice(0, eq);
      const rawValue = eq === -1 ? '' : part.slice(eq + 1);
      if (rawName === '' || !HEADER_CHARS.test(rawName) || !HEADER_CHARS.test(rawValue)) {
        return fail(`bad URI header ${JSON.stringify(part.slice(0, 40))}`);
      }
      const name = unescapeUriPart(rawName);
      const value = unescapeUriPart(rawValue);
      if (name === undefined || value === undefined) return fail('bad escape in URI header');
      headers.push([name, value]);
    }
  }

  const uri: SipUri = {
    kind: 'sip',
    scheme,
    host: host.value.host,
    hostType: host.value.hostType,
    params,
    headers,
  };
  if (host.value.port !== undefined) uri.port = host.value.port;
  if (userRaw !== undefined) {
    const user = unescapeUriPart(userRaw);
    if (user === undefined) return fail('bad escape in user part');
    uri.user = user;
    uri.userRaw = userRaw;
  }
  if (passwordRaw !== undefined) {
    const password = unescapeUriPart(passwordRaw);
    if (password === undefined) return fail('bad escape in password');
    uri.password = password;
  }
  return ok(uri);
}

/** A `tel:` URI (RFC 3966): global (`+...`) or local number, then `;name=value` parameters. */
export function parseTelUri(text: string): Result<TelUri> {
  if (typeof text !== 'string') return fail('URI is not a string');
  if (!/^tel:/i.test(text)) return fail('not a tel: URI');
  if (WS.test(text)) return fail('whitespace or control character in URI');
  const rest = text.slice(4);
  const semi = rest.indexOf(';');
  const number = semi === -1 ? rest : rest.slice(0, semi);
  const global = TEL_GLOBAL.test(number) && /[0-9]/.test(number);
  if (!global && !(TEL_LOCAL.test(number) && /[0-9A-Fa-f*#]/.test(number))) {
    return fail(`bad telephone number ${JSON.stringify(number.slice(0, 40))}`);
  }
  const params = new Map<string, string>();
  if (semi !== -1) {
    for (const part of rest.slice(semi + 1).split(';')) {
      const eq = part.indexOf('=');
      const name = eq === -1 ? part : part.slice(0, eq);
      const value = eq === -1 ? '' : part.slice(eq + 1);
      if (!TEL_PNAME.test(name) || !PARAM_CHARS.test(value) || (eq !== -1 && value === '')) {
        return fail(`bad tel parameter ${JSON.stringify(part.slice(0, 40))}`);
      }
      const decoded = unescapeUriPart(value);
      if (decoded === undefined) return fail('bad escape in tel parameter');
      if (!params.has(name.toLowerCase())) params.set(name.toLowerCase(), decoded);
    }
  }
  return ok({ kind: 'tel', scheme: 'tel', number, params });
}

/**
 * Any URI of a SIP message: `sip:`/`sips:` and `tel:` are parsed and validated; another
 * `scheme:` followed by non-space characters is an opaque {@link AbsoluteUri}.
 */
export function parseUri(text: string): Result<Uri> {
  if (typeof text !== 'string') return fail('URI is not a string');
  const m = SCHEME.exec(text);
  if (!m) return fail(`no scheme in URI ${JSON.stringify(text.slice(0, 40))}`);
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'sip' || scheme === 'sips') return parseSipUri(text);
  if (scheme === 'tel') return parseTelUri(text);
  const opaque = text.slice(m[0].length);
  if (opaque === '' || WS.test(opaque) || /[<>"]/.test(opaque)) return fail(`bad ${scheme}: URI`);
  return ok({ kind: 'absolute', scheme, opaque });
}

function formatParams(params: Map<string, string>, safe: RegExp): string {
  let out = '';
  for (const [name, value] of params) {
    out += `;${escapeWith(name, safe)}`;
    if (value !== '') out += `=${escapeWith(value, safe)}`;
  }
  return out;
}

/**
 * The URI as text. Components are escaped where RFC 3261 §25.1 requires it, so any
 * {@link SipUri} formats to a URI that {@link parseUri} reads back to the same value. A
 * `userRaw` that still decodes to `user` is kept as written.
 */
export function formatUri(uri: Uri): string {
  if (uri.kind === 'absolute') return `${uri.scheme}:${uri.opaque}`;
  if (uri.kind === 'tel') return `tel:${uri.number}${formatParams(uri.params, PARAM_SAFE)}`;
  let out = `${uri.scheme}:`;
  if (uri.user !== undefined) {
    const raw = uri.userRaw;
    out +=
      raw !== undefined && USER_CHARS.test(raw) && unescapeUriPart(raw) === uri.user
        ? raw
        : escapeWith(uri.user, USER_SAFE);
    if (uri.password !== undefined) out += `:${escapeWith(uri.password, PASSWORD_SAFE)}`;
    out += '@';
  }
  out += uri.hostType === 'ipv6' ? `[${uri.host}]` : uri.host;
  if (uri.port !== undefined) out += `:${uri.port}`;
  out += formatParams(uri.params, PARAM_SAFE);
  if (uri.headers.length > 0) {
    out += `?${uri.headers.map(([n, v]) => `${escapeWith(n, HEADER_SAFE)}=${escapeWith(v, HEADER_SAFE)}`).join('&')}`;
  }
  return out;
}

function isLws(ch: string | undefined): boolean {
  return ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n';
}

function skipLws(s: string, i: number): number {
  while (isLws(s[i])) i++;
  return i;
}

/** A quoted-string starting at `s[i] === '"'`: its unescaped content and the index after it. */
function readQuoted(s: string, i: number): Result<{ text: string; end: number }> {
  let text = '';
  for (let j = i + 1; j < s.length; j++) {
    const ch = s[j]!;
    if (ch === '"') return ok({ text, end: j + 1 });
    if (ch === '\\') {
      const next = s[j + 1];
      // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F) (RFC 3261 §25.1)
      if (next === undefined || next === '\r' || next === '\n' || next.charCodeAt(0) > 0x7f) {
        return fail('bad quoted-pair');
      }
      text += next;
      j++;
    } else if (ch === '\r' || ch === '\n') {
      return fail('line break in quoted string');
    } else {
      text += ch;
    }
  }
  return fail('unterminated quoted string');
}

/**
 * Header parameters `*( SEMI generic-param )` (RFC 3261 §25.1), LWS allowed around `;` and
 * `=`. A value is a token, an IPv6 address (bare or in brackets) or a quoted-string (returned
 * unquoted). Names are lower-cased; the first of repeated names wins. Empty parameters (`;;`)
 * and values fail.
 */
export function parseHeaderParams(text: string): Result<Map<string, string>> {
  const params = new Map<string, string>();
  let i = skipLws(text, 0);
  while (i < text.length) {
    if (text[i] !== ';') return fail(`unexpected ${JSON.stringify(text[i])} before parameters`);
    i = skipLws(text, i + 1);
    const nameStart = i;
    while (i < text.length && TOKEN.test(text[i]!)) i++;
    const name = text.slice(nameStart, i).toLowerCase();
    if (name === '') return fail('empty header parameter');
    i = skipLws(text, i);
    let value = '';
    if (text[i] === '=') {
      i = skipLws(text, i + 1);
      if (text[i] === '"') {
        const q = readQuoted(text, i);
        if (!q.ok) return q;
        value = q.value.text;
        i = q.value.end;
      } else if (text[i] === '[') {
        const close = text.indexOf(']', i);
        if (close === -1 || !isIPv6(text.slice(i + 1, close))) return fail(`bad IPv6 value of ${name}`);
        value = text.slice(i, close + 1);
        i = close + 1;
      } else {
        const start = i;
        while (i < text.length && (TOKEN.test(text[i]!) || text[i] === ':')) i++;
        value = text.slice(start, i);
        if (value === '') return fail(`empty value of parameter ${name}`);
        // Via received= takes a bare IPv6address (RFC 3261 §20.42, RFC 5118 §4.5).
        if (value.includes(':') && !isIPv6(value)) return fail(`bad value of parameter ${name}`);
      }
      i = skipLws(text, i);
    }
    if (!params.has(name)) params.set(name, value);
  }
  return ok(params);
}

/** Index of the first `<` outside a quoted string, or -1. */
function findAngle(s: string, from: number): number {
  for (let i = from; i < s.length; i++) {
    if (s[i] === '"') {
      const q = readQuoted(s, i);
      if (!q.ok) return -1;
      i = q.value.end - 1;
    } else if (s[i] === '<') return i;
  }
  return -1;
}

/**
 * One From/To/Contact/Route value: `[display-name] <URI> *(;param)` or a bare
 * `URI *(;param)` (RFC 3261 §20.10, §25.1). Liberal where RFC 4475 asks for it: LWS and line
 * folding anywhere LWS may go, no LWS needed before `<` (§3.1.1.6), escapes and NULs in quoted
 * display names. Strict where the RFC says reject: unterminated quotes, a display name that is
 * neither quoted nor tokens (`Bell, Alexander`), whitespace inside `<...>`, a bare addr-spec
 * holding `?` or `,`, empty parameters.
 */
export function parseNameAddr(value: string): Result<NameAddr> {
  if (typeof value !== 'string') return fail('value is not a string');
  const i = skipLws(value, 0);
  if (i === value.length) return fail('empty address');
  let displayName: string | undefined;
  let angleAt: number;
  if (value[i] === '"') {
    const q = readQuoted(value, i);
    if (!q.ok) return q;
    displayName = q.value.text;
    angleAt = skipLws(value, q.value.end);
    if (value[angleAt] !== '<') return fail('expected <URI> after the display name');
  } else {
    angleAt = findAngle(value, i);
    if (angleAt !== -1) {
      const words = value.slice(i, angleAt).trim();
      if (words !== '') {
        const parts = words.split(/[ \t\r\n]+/);
        if (!parts.every((w) => TOKEN.test(w))) {
          return fail(`display name is neither quoted nor tokens: ${JSON.stringify(words.slice(0, 40))}`);
        }
        displayName = parts.join(' ');
      }
    }
  }

  let uriText: string;
  let rest: string;
  const angle = angleAt !== -1;
  if (angle) {
    const close = value.indexOf('>', angleAt);
    if (close === -1) return fail('unterminated <URI>');
    uriText = value.slice(angleAt + 1, close);
    rest = value.slice(close + 1);
    if (/[ \t\r\n]/.test(uriText)) return fail('whitespace inside <URI>');
  } else {
    const semi = value.indexOf(';', i);
    uriText = (semi === -1 ? value.slice(i) : value.slice(i, semi)).trim();
    rest = semi === -1 ? '' : value.slice(semi);
    // §20.10: an addr-spec holding a comma, semicolon or question mark must be in <>.
    if (/[?,]/.test(uriText)) return fail('a bare URI with ? or , must be enclosed in <>');
    if (/[ \t\r\n]/.test(uriText)) return fail('whitespace inside the URI');
  }
  const uri = parseUri(uriText);
  if (!uri.ok) return uri;
  const params = parseHeaderParams(rest);
  if (!params.ok) return params;
  const out: NameAddr = { uri: uri.value, angle, params: params.value };
  if (displayName !== undefined) out.displayName = displayName;
  return ok(out);
}

/**
 * A quoted-string holding `text`: `"` and `\` and control characters as quoted-pairs (so no raw
 * NUL reaches the wire); CR and LF, which no quoted-pair may carry, become spaces.
 */
export function quoteString(text: string): string {
  const body = text.replace(/[\r\n]/g, ' ').replace(/[\\"\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, (c) => `\\${c}`);
  return `"${body}"`;
}

function formatParamValue(value: string): string {
  if (TOKEN.test(value) || isIPv6(value)) return value;
  if (value.startsWith('[') && value.endsWith(']') && isIPv6(value.slice(1, -1))) return value;
  return quoteString(value);
}

/** Header parameters as `;name=value` text, quoting values that are not tokens. */
export function formatHeaderParams(params: Map<string, string>): string {
  let out = '';
  for (const [name, value] of params) {
    out += value === '' ? `;${name}` : `;${name}=${formatParamValue(value)}`;
  }
  return out;
}

/**
 * A name-addr or addr-spec as header value text. The display name is always quoted (CR and LF,
 * which a quoted string cannot carry, become spaces). The bare form is used only when `angle`
 * is false and it reads back the same: no display name, and a URI without `;`, `?` or `,`.
 */
export function formatNameAddr(na: NameAddr): string {
  const uri = formatUri(na.uri);
  const bare = !na.angle && na.displayName === undefined && !/[;?,]/.test(uri);
  let out = bare ? uri : `<${uri}>`;
  if (na.displayName !== undefined) out = `${quoteString(na.displayName)} ${out}`;
  return out + formatHeaderParams(na.params);
}

/** The user of a URI as written (escapes kept): the SIP user part, a TEL number, else undefined. */
export function uriUser(uri: Uri): string | undefined {
  if (uri.kind === 'sip') return uri.userRaw;
  if (uri.kind === 'tel') return uri.number;
  return undefined;
}

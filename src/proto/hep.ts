import { isIPv4, isIPv6 } from 'node:net';
import { deflateSync, unzipSync } from 'node:zlib';
import { ErrorCode, SwitchyardError } from '../core/errors.ts';
import { decodeExtra, encodeExtra, HEP_EXTRA_SIZES, HEP_EXTRA_TYPES, type HepExtra } from './hep-extra.ts';

export type { HepExtra } from './hep-extra.ts';

/**
 * HEP v3 (HEP3/EEP) codec: the envelope in which Kamailio `siptrace`, Asterisk `res_hep`, sngrep
 * and the heplify/captagent agents mirror SIP to a capture server. Pure, no I/O.
 *
 * Wire format (sipcapture/HEP HEP3_Network_Protocol_Specification_REV_37; research/anchors.md
 * §3.1): `"HEP3"`, a u16 total length (header included), then chunks of
 * `vendor u16 | type u16 | length u16 (6-byte chunk header included) | value`, all big-endian.
 * Vendor 0 is the generic chunk set; any other vendor's chunks are skipped (and counted).
 * Generic chunks 1..19 are decoded here, 0x14..0x29 (MACs, TCP flags, MOS, ...) in hep-extra.ts;
 * the reserved and unassigned generic types are skipped (and counted).
 *
 * What Kamailio 5.6 `siptrace` sends (src/modules/siptrace/siptrace_hep.c, and the captures in
 * test/fixtures/hep/): chunks 1, 2, 3+4 or 5+6, 7, 8, 9, 10, 11 (=1 SIP), 12, then 17 when a
 * correlation id is given, 14 when `auth_key` is set, and 15 last. Family is the Linux AF_*
 * number (2 / 10); protocol is 17 or 6, and 22 (IPPROTO_IDP, its "fake proto") for TLS/WS/WSS.
 * {@link encodeHep} writes the same chunks in the same order, so its output for Kamailio's
 * inputs is byte-identical to Kamailio's (a test checks this against the captures).
 *
 * Other senders order and size things differently, and the decoder relies on none of it (see
 * test/fixtures/hep/README.md for the layouts of Asterisk res_hep, captagent 6 and heplify):
 * chunk order is free (heplify 1.x puts 17, 18, 19 after the payload), the payload chunk is not
 * always last, and chunks this decoder does not need may be present or absent.
 *
 * The decoder never throws on what the peer sends. A packet it cannot trust is dropped with one
 * of a small fixed set of reasons ({@link HepDropReason}, meant as a metric label) plus a detail
 * string for a debug log.
 */

/** Why a packet was dropped: a closed set, usable as a Prometheus label value. */
export type HepDropReason =
  /** Fewer bytes than the header or the total length field says. */
  | 'truncated'
  /** Larger than the decoder's `maxBytes` (or an inflated payload larger than `maxInflatedBytes`). */
  | 'too-large'
  /** Does not start with `HEP3`. */
  | 'bad-magic'
  /** Looks like HEP v1/v2 (Kamailio's `hep_version` defaults to 1): tell the operator to set 3. */
  | 'unsupported-version'
  /** The total length field is below 6, or bytes follow the packet it describes. */
  | 'length-mismatch'
  /** A chunk's length field is below the 6-byte chunk header. */
  | 'chunk-too-short'
  /** A chunk (its header or its declared length) runs past the end of the packet. */
  | 'chunk-overrun'
  /** A fixed-size generic chunk (u8/u16/u32/address) has another size. */
  | 'bad-chunk-size'
  /** A generic chunk that carries one value appears twice (two payloads, two source ports...). */
  | 'duplicate-chunk'
  /** A required chunk is absent: family, both addresses, both ports, payload. */
  | 'missing-chunk'
  /** IP family is neither 2 nor 10, or the address chunks are of the other family. */
  | 'bad-family'
  /** Chunk 16 is not gzip/zlib data. */
  | 'bad-compression';

/** Every {@link HepDropReason}, e.g. to initialise a counter's label values to zero. */
export const HEP_DROP_REASONS: readonly HepDropReason[] = [
  'truncated',
  'too-large',
  'bad-magic',
  'unsupported-version',
  'length-mismatch',
  'chunk-too-short',
  'chunk-overrun',
  'bad-chunk-size',
  'duplicate-chunk',
  'missing-chunk',
  'bad-family',
  'bad-compression',
];

/** A decoded HEP3 packet. Strings are UTF-8 decoded leniently (bad bytes become U+FFFD). */
export interface HepPacket {
  /** From chunk 1: AF_INET (2) is 4, AF_INET6 (10) is 6. */
  ipFamily: 4 | 6;
  /** Chunk 2, IP protocol number: 17 UDP, 6 TCP, 132 SCTP; Kamailio uses 22 for TLS/WS/WSS. 0 when absent. */
  protocol: number;
  /** Chunks 3/5, IPv4 dotted quad or IPv6 in RFC 5952 form (see {@link formatIp}). */
  srcIp: string;
  /** Chunks 4/6. */
  dstIp: string;
  /** Chunk 7. */
  srcPort: number;
  /** Chunk 8. */
  dstPort: number;
  /** Chunk 9, seconds since the Unix epoch; 0 when absent (then use the receive time). */
  tsSec: number;
  /** Chunk 10, microseconds within that second, as sent (not range-checked); 0 when absent. */
  tsUsec: number;
  /** Chunk 11: 1 SIP, 5 RTCP, 100 log, ... 0 when absent. */
  protoType: number;
  /** Chunk 12, capture agent id (Kamailio `hep_capture_id`). 0 when absent. */
  captureId: number;
  /** Chunk 13, keep-alive timer in seconds. */
  keepAliveSec?: number;
  /** Chunk 14, the sender's auth key (checking it is the server's business). */
  authKey?: string;
  /**
   * Chunk 15 as a view into the input (no copy: copy it before the input buffer is reused), or
   * the inflated chunk 16 (a fresh buffer; `compressed` is then true).
   */
  payload: Uint8Array;
  /** True when the payload came from chunk 16 (compressed payload). */
  compressed: boolean;
  /** Chunk 17. */
  correlationId?: string;
  /** Chunk 18. */
  vlan?: number;
  /** Chunk 19, capture agent name. */
  nodeName?: string;
  /** Generic chunks 0x14..0x29 (see {@link HepExtra}); present only when the packet has one. */
  extra?: HepExtra;
  /** Chunks of a vendor other than 0 (skipped). */
  vendorChunks: number;
  /**
   * Generic chunks skipped: those the spec does not define (type 0, the reserved 0x19..0x1f,
   * 0x2a and up; size unchecked), and chunks 0x14..0x29 of the wrong size or repeated.
   */
  ignoredChunks: number;
}

/**
 * The decoder's answer. Assignable to `Result<HepPacket>` (src/core/result.ts), with the reason
 * narrowed to {@link HepDropReason} and a `detail` for logs (never for metric labels).
 */
export type HepResult = { ok: true; value: HepPacket } | { ok: false; reason: HepDropReason; detail: string };

export interface HepDecodeOptions {
  /** Refuse larger inputs. Default 65535, the most a u16 total length can describe. */
  maxBytes?: number;
  /**
   * Largest payload after inflating chunk 16; larger ones are dropped as `too-large` (inflating
   * stops there, so a small bomb cannot allocate more). 0 drops every compressed payload.
   * Default 65535.
   */
  maxInflatedBytes?: number;
}

/** One chunk as it goes on the wire, for vendor chunks and for tests. */
export interface HepRawChunk {
  vendorId: number;
  typeId: number;
  value: Uint8Array;
}

/** What {@link encodeHep} needs. The family follows from the addresses (both must match). */
export interface HepPacketInput {
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  tsSec: number;
  tsUsec: number;
  /** Default 17 (UDP). */
  protocol?: number;
  /** Default 1 (SIP). */
  protoType?: number;
  /** Default 0. */
  captureId?: number;
  keepAliveSec?: number;
  authKey?: string;
  correlationId?: string;
  vlan?: number;
  nodeName?: string;
  /** Chunks 0x14..0x29, written after chunk 19 in type order. */
  extra?: HepExtra;
  /** Bytes, or text written as UTF-8. */
  payload: Uint8Array | string;
  /** Write the payload deflated (zlib format) in chunk 16 instead of chunk 15. */
  compress?: boolean;
  /** Written as given after the generic chunks, before the payload (e.g. vendor chunks). */
  extraChunks?: readonly HepRawChunk[];
}

export const HEP_MAGIC = 'HEP3';
export const HEP_HEADER_BYTES = 6;
export const HEP_CHUNK_HEADER_BYTES = 6;
export const HEP_MAX_BYTES = 0xffff;
/** Address family numbers in chunk 1 (Linux AF_INET / AF_INET6, as every sender uses). */
export const HEP_AF_INET = 2;
export const HEP_AF_INET6 = 10;

const MAGIC = [0x48, 0x45, 0x50, 0x33] as const;

/** Generic chunk types (vendor 0). */
const T = {
  family: 1,
  protocol: 2,
  srcIp4: 3,
  dstIp4: 4,
  srcIp6: 5,
  dstIp6: 6,
  srcPort: 7,
  dstPort: 8,
  tsSec: 9,
  tsUsec: 10,
  protoType: 11,
  captureId: 12,
  keepAlive: 13,
  authKey: 14,
  payload: 15,
  compressedPayload: 16,
  correlationId: 17,
  vlan: 18,
  nodeName: 19,
} as const;
const LAST_DECODED_TYPE = 19;

/**
 * Accepted value sizes of the fixed-size generic chunks this decoder reads (1..19 here, the rest
 * from hep-extra.ts); the others are octet strings.
 */
const FIXED_SIZE: ReadonlyMap<number, readonly number[]> = new Map([
  [T.family, [1]],
  [T.protocol, [1]],
  [T.srcIp4, [4]],
  [T.dstIp4, [4]],
  [T.srcIp6, [16]],
  [T.dstIp6, [16]],
  [T.srcPort, [2]],
  [T.dstPort, [2]],
  [T.tsSec, [4]],
  [T.tsUsec, [4]],
  [T.protoType, [1]],
  [T.captureId, [4]],
  [T.keepAlive, [2]],
  [T.vlan, [2]],
  ...HEP_EXTRA_SIZES,
]);

/** Generic chunk types the spec defines and this decoder checks and decodes. */
function isDecoded(type: number): boolean {
  return (type > 0 && type <= LAST_DECODED_TYPE) || HEP_EXTRA_TYPES.has(type);
}

const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
const encoder = new TextEncoder();

type HepDrop = Extract<HepResult, { ok: false }>;

function drop(reason: HepDropReason, detail: string): HepDrop {
  return { ok: false, reason, detail };
}

function u16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function hexPrefix(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, Math.min(b.length, 8)).toString('hex');
}

/**
 * HEP v1/v2 start with a version byte (1 or 2), a header length, then the address family; no
 * magic. Kamailio sends this by default (`hep_version` 1), so it gets a reason of its own.
 */
function looksLikeHepV1V2(b: Uint8Array): boolean {
  return (b[0] === 1 || b[0] === 2) && (b[2] === HEP_AF_INET || b[2] === HEP_AF_INET6);
}

/** Values of the generic chunks seen so far, as views into the input. */
type Seen = Map<number, Uint8Array>;

/**
 * Decodes one HEP3 packet: a whole UDP datagram, or one frame cut by {@link HepStreamFramer}.
 * - The total length must equal the input length: a short input is `truncated`, trailing bytes
 *   are `length-mismatch` (a datagram holds exactly one packet; a stream framer cuts exactly).
 * - Generic chunks 1..19 and 0x14..0x29 are checked and decoded; other generic types and all
 *   vendor chunks are skipped by their length, which is still checked (a bad length is a framing
 *   error).
 * - Chunk 16 is inflated (gzip or zlib header, auto-detected) up to `maxInflatedBytes`.
 *
 * @example
 *   const r = decodeHep(datagram);
 *   if (!r.ok) drops.inc({ reason: r.reason });
 *   else store(r.value);
 */
export function decodeHep(buf: Uint8Array, opts: HepDecodeOptions = {}): HepResult {
  if (!(buf instanceof Uint8Array)) return drop('truncated', 'input is not bytes');
  const maxBytes = opts.maxBytes ?? HEP_MAX_BYTES;
  const maxInflatedBytes = opts.maxInflatedBytes ?? HEP_MAX_BYTES;
  if (buf.length > maxBytes) return drop('too-large', `${buf.length} bytes exceeds ${maxBytes}`);

  for (let i = 0; i < MAGIC.length && i < buf.length; i++) {
    if (buf[i] !== MAGIC[i]) {
      if (looksLikeHepV1V2(buf)) return drop('unsupported-version', `HEPv${buf[0]} (set hep_version 3)`);
      return drop('bad-magic', `starts with ${hexPrefix(buf)}`);
    }
  }
  if (buf.length < HEP_HEADER_BYTES) return drop('truncated', `${buf.length} bytes, less than a header`);
  const total = u16(buf, 4);
  if (total < HEP_HEADER_BYTES) return drop('length-mismatch', `total length ${total} < ${HEP_HEADER_BYTES}`);
  if (total > buf.length) return drop('truncated', `total length ${total}, only ${buf.length} bytes`);
  if (total < buf.length) return drop('length-mismatch', `${buf.length - total} bytes after the packet`);

  const seen: Seen = new Map();
  let vendorChunks = 0;
  let ignoredChunks = 0;
  for (let off = HEP_HEADER_BYTES; off < total; ) {
    if (total - off < HEP_CHUNK_HEADER_BYTES) {
      return drop('chunk-overrun', `${total - off} bytes at ${off}, less than a chunk header`);
    }
    const vendor = u16(buf, off);
    const type = u16(buf, off + 2);
    const len = u16(buf, off + 4);
    // HEP3: the chunk length includes the 6-byte chunk header.
    if (len < HEP_CHUNK_HEADER_BYTES) return drop('chunk-too-short', `chunk ${vendor}/${type} length ${len}`);
    if (off + len > total) return drop('chunk-overrun', `chunk ${vendor}/${type} of ${len} at ${off}`);
    const value = buf.subarray(off + HEP_CHUNK_HEADER_BYTES, off + len);
    off += len;
    if (vendor !== 0) {
      vendorChunks++;
      continue;
    }
    if (!isDecoded(type)) {
      ignoredChunks++;
      continue;
    }
    const sizes = FIXED_SIZE.get(type);
    // Metadata past chunk 19 (MACs, MOS, TCP flags...) is never stored: a sender that sizes or
    // repeats it differently must not lose its SIP, so such a chunk is only ignored (and counted).
    if (
      HEP_EXTRA_TYPES.has(type) &&
      ((sizes !== undefined && !sizes.includes(value.length)) || seen.has(type))
    ) {
      ignoredChunks++;
      continue;
    }
    if (sizes !== undefined && !sizes.includes(value.length)) {
      return drop('bad-chunk-size', `chunk ${type} has ${value.length} bytes, not ${sizes.join(' or ')}`);
    }
    if (seen.has(type)) return drop('duplicate-chunk', `chunk ${type} twice`);
    seen.set(type, value);
  }
  return assemble(seen, vendorChunks, ignoredChunks, maxInflatedBytes);
}

function assemble(seen: Seen, vendorChunks: number, ignoredChunks: number, maxInflated: number): HepResult {
  const family = seen.get(T.family);
  if (family === undefined) return drop('missing-chunk', 'no IP family (1)');
  const af = family[0]!;
  if (af !== HEP_AF_INET && af !== HEP_AF_INET6) return drop('bad-family', `IP family ${af}`);
  const v6 = af === HEP_AF_INET6;
  const [srcType, dstType, otherSrc, otherDst] = v6
    ? [T.srcIp6, T.dstIp6, T.srcIp4, T.dstIp4]
    : [T.srcIp4, T.dstIp4, T.srcIp6, T.dstIp6];
  if (seen.has(otherSrc) || seen.has(otherDst)) {
    return drop('bad-family', `IPv${v6 ? 6 : 4} family with IPv${v6 ? 4 : 6} address chunks`);
  }
  const src = seen.get(srcType);
  const dst = seen.get(dstType);
  if (src === undefined || dst === undefined) {
    return drop(
      'missing-chunk',
      `no ${src === undefined ? 'source' : 'destination'} address (${src === undefined ? srcType : dstType})`,
    );
  }
  const srcPort = seen.get(T.srcPort);
  const dstPort = seen.get(T.dstPort);
  if (srcPort === undefined || dstPort === undefined) {
    return drop('missing-chunk', `no ${srcPort === undefined ? 'source port (7)' : 'destination port (8)'}`);
  }
  const plain = seen.get(T.payload);
  const deflated = seen.get(T.compressedPayload);
  if (plain !== undefined && deflated !== undefined) {
    return drop('duplicate-chunk', 'both payload (15) and compressed payload (16)');
  }
  let payload: Uint8Array;
  if (plain !== undefined) payload = plain;
  else if (deflated !== undefined) {
    const inflated = inflate(deflated, maxInflated);
    if (!inflated.ok) return inflated;
    payload = inflated.value;
  } else return drop('missing-chunk', 'no payload (15 or 16)');

  const packet: HepPacket = {
    ipFamily: v6 ? 6 : 4,
    protocol: seen.get(T.protocol)?.[0] ?? 0,
    srcIp: formatIp(src),
    dstIp: formatIp(dst),
    srcPort: u16(srcPort, 0),
    dstPort: u16(dstPort, 0),
    tsSec: optU32(seen.get(T.tsSec)),
    tsUsec: optU32(seen.get(T.tsUsec)),
    protoType: seen.get(T.protoType)?.[0] ?? 0,
    captureId: optU32(seen.get(T.captureId)),
    payload,
    compressed: deflated !== undefined,
    vendorChunks,
    ignoredChunks,
  };
  const keepAlive = seen.get(T.keepAlive);
  if (keepAlive !== undefined) packet.keepAliveSec = u16(keepAlive, 0);
  const authKey = seen.get(T.authKey);
  if (authKey !== undefined) packet.authKey = decoder.decode(authKey);
  const correlationId = seen.get(T.correlationId);
  if (correlationId !== undefined) packet.correlationId = decoder.decode(correlationId);
  const vlan = seen.get(T.vlan);
  if (vlan !== undefined) packet.vlan = u16(vlan, 0);
  const nodeName = seen.get(T.nodeName);
  if (nodeName !== undefined) packet.nodeName = decoder.decode(nodeName);
  const extra = decodeExtra(seen);
  if (extra !== undefined) packet.extra = extra;
  return { ok: true, value: packet };
}

function optU32(b: Uint8Array | undefined): number {
  return b === undefined ? 0 : u32(b, 0);
}

/**
 * Chunk 16: the spec says "gzip/inflate" without fixing the container, so both the gzip and the
 * zlib header are accepted (zlib's auto-detection); raw deflate is not. `maxOutputLength` makes
 * zlib stop at the limit instead of allocating whatever the peer claims.
 */
function inflate(value: Uint8Array, maxBytes: number): { ok: true; value: Uint8Array } | HepDrop {
  if (maxBytes <= 0) return drop('too-large', 'compressed payloads are refused (maxInflatedBytes 0)');
  try {
    return { ok: true, value: new Uint8Array(unzipSync(value, { maxOutputLength: maxBytes })) };
  } catch (err) {
    // zlib signals the limit with a RangeError (ERR_BUFFER_TOO_LARGE); anything else is bad data.
    if (err instanceof RangeError) return drop('too-large', `inflated payload exceeds ${maxBytes} bytes`);
    return drop('bad-compression', err instanceof Error ? err.message : 'inflate failed');
  }
}

/**
 * An address chunk's value as text: IPv4 dotted quad; IPv6 per RFC 5952 (lower case, no leading
 * zeros, the longest run of two or more zero groups as `::`, the first on a tie), with the
 * IPv4-mapped `::ffff:a.b.c.d` form of RFC 5952 §5, as glibc's inet_ntop writes it and as Node
 * reports peers of dual-stack sockets.
 */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(u16(b, i));
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (mapped) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** IPv4 or IPv6 text (no zone, no brackets) as 4 or 16 bytes; undefined if it is neither. */
export function parseIp(text: string): Uint8Array | undefined {
  if (typeof text !== 'string') return undefined;
  if (isIPv4(text)) return Uint8Array.from(text.split('.').map(Number));
  if (!isIPv6(text) || text.includes('%')) return undefined;
  let head = text;
  let v4Tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    v4Tail = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [left = '', right] = head.split('::') as [string, string | undefined];
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const l = parse(left);
  const r = right === undefined ? [] : parse(right);
  const groups =
    right === undefined ? l : [...l, ...new Array<number>(8 - l.length - r.length).fill(0), ...r];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (v4Tail.length === 4) out.set(v4Tail, 12);
  return out;
}

function invalid(what: string, value: unknown): never {
  throw new SwitchyardError(
    ErrorCode.INVALID_ARGUMENT,
    `encodeHep: invalid ${what} ${JSON.stringify(value)}`,
  );
}

function checkUint(what: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 0 || value > max) invalid(what, value);
  return value;
}

/**
 * A HEP3 packet, ready for a datagram or a stream. Chunk order follows Kamailio's siptrace
 * (1, 2, 3/5, 4/6, 7, 8, 9, 10, 11, 12, then 13, 17, 14, 18, 19 and 0x14..0x29 when set, extra
 * chunks, 15/16),
 * so Kamailio's inputs give Kamailio's bytes. Invalid input (a bad address, mixed families, an
 * out-of-range number, more than 65535 bytes in all) is a programmer error and throws
 * SY_ERR_INVALID_ARGUMENT.
 *
 * @example
 *   const bytes = encodeHep({ srcIp: '10.0.0.1', srcPort: 5060, dstIp: '10.0.0.2', dstPort: 5060,
 *     tsSec: 1700000000, tsUsec: 0, captureId: 2001, payload: sipText });
 */
export function encodeHep(p: HepPacketInput): Uint8Array {
  const src = parseIp(p.srcIp) ?? invalid('srcIp', p.srcIp);
  const dst = parseIp(p.dstIp) ?? invalid('dstIp', p.dstIp);
  if (src.length !== dst.length) invalid('address pair (mixed families)', `${p.srcIp} ${p.dstIp}`);
  const v6 = src.length === 16;
  const chunks: HepRawChunk[] = [];
  const add = (typeId: number, value: Uint8Array): void => {
    chunks.push({ vendorId: 0, typeId, value });
  };
  const uint = (what: string, value: number, bytes: 1 | 2 | 4): Uint8Array => {
    const v = checkUint(what, value, 2 ** (bytes * 8) - 1);
    const out = new Uint8Array(bytes);
    for (let i = 0; i < bytes; i++) out[i] = Math.floor(v / 2 ** (8 * (bytes - 1 - i))) & 0xff;
    return out;
  };
  add(T.family, uint('family', v6 ? HEP_AF_INET6 : HEP_AF_INET, 1));
  add(T.protocol, uint('protocol', p.protocol ?? 17, 1));
  add(v6 ? T.srcIp6 : T.srcIp4, src);
  add(v6 ? T.dstIp6 : T.dstIp4, dst);
  add(T.srcPort, uint('srcPort', p.srcPort, 2));
  add(T.dstPort, uint('dstPort', p.dstPort, 2));
  add(T.tsSec, uint('tsSec', p.tsSec, 4));
  add(T.tsUsec, uint('tsUsec', p.tsUsec, 4));
  add(T.protoType, uint('protoType', p.protoType ?? 1, 1));
  add(T.captureId, uint('captureId', p.captureId ?? 0, 4));
  if (p.keepAliveSec !== undefined) add(T.keepAlive, uint('keepAliveSec', p.keepAliveSec, 2));
  if (p.correlationId !== undefined) add(T.correlationId, encoder.encode(p.correlationId));
  if (p.authKey !== undefined) add(T.authKey, encoder.encode(p.authKey));
  if (p.vlan !== undefined) add(T.vlan, uint('vlan', p.vlan, 2));
  if (p.nodeName !== undefined) add(T.nodeName, encoder.encode(p.nodeName));
  for (const [typeId, value] of encodeExtra(p.extra ?? {})) add(typeId, value);
  for (const c of p.extraChunks ?? []) {
    checkUint('extra chunk vendorId', c.vendorId, 0xffff);
    checkUint('extra chunk typeId', c.typeId, 0xffff);
    chunks.push(c);
  }
  const payload = typeof p.payload === 'string' ? encoder.encode(p.payload) : p.payload;
  if (!(payload instanceof Uint8Array)) invalid('payload', typeof p.payload);
  if (p.compress === true) add(T.compressedPayload, new Uint8Array(deflateSync(payload)));
  else add(T.payload, payload);
  return encodeHepChunks(chunks);
}

/**
 * A HEP3 packet made of exactly these chunks, in this order, unchecked beyond what the wire can
 * express: for vendor extensions, forwarding, and tests that need packets no sender would make.
 * Throws SY_ERR_INVALID_ARGUMENT when a chunk or the whole exceeds 65535 bytes.
 */
export function encodeHepChunks(chunks: readonly HepRawChunk[]): Uint8Array {
  let total = HEP_HEADER_BYTES;
  for (const c of chunks) {
    const len = HEP_CHUNK_HEADER_BYTES + c.value.length;
    if (len > HEP_MAX_BYTES) invalid(`chunk ${c.vendorId}/${c.typeId} length`, len);
    total += len;
  }
  if (total > HEP_MAX_BYTES) invalid('packet length', total);
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[4] = total >> 8;
  out[5] = total & 0xff;
  let off = HEP_HEADER_BYTES;
  for (const c of chunks) {
    const len = HEP_CHUNK_HEADER_BYTES + c.value.length;
    out[off] = c.vendorId >> 8;
    out[off + 1] = c.vendorId & 0xff;
    out[off + 2] = c.typeId >> 8;
    out[off + 3] = c.typeId & 0xff;
    out[off + 4] = len >> 8;
    out[off + 5] = len & 0xff;
    out.set(c.value, off + HEP_CHUNK_HEADER_BYTES);
    off += len;
  }
  return out;
}

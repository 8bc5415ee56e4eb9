import { ErrorCode, SwitchyardError } from '../core/errors.ts';

/**
 * The generic HEP3 chunks after 19 (vendor 0): link-layer and quality metadata that capture agents
 * may add to a packet. This server stores none of it; it is decoded so that a packet carrying it is
 * understood (and its sizes checked) rather than skipped blindly. Kept apart from hep.ts, whose
 * chunks 1..19 are the ones the capture pipeline reads.
 *
 * The list and the value types are the generic chunk table of the HEP3 specification
 * (sipcapture/HEP, docs/HEP3_Network_Protocol_Specification_REV_*.pdf), as transcribed in the
 * mroject/hep crate (src/lib.rs, `Chunk`) and in sipcapture/hepagent.rs
 * (hep-rs/src/packet/hep.rs.in, `HepChunkTypeIds`); 0x28 and 0x29 appear only in a later
 * transcription (a Go `package binary` constants file) and are decoded with the same care.
 * 0x19..0x1f are reserved, so they stay unknown (skipped and counted by the caller).
 *
 * Who sends them: heplify 2.x (sipcapture/heplify src/hep/encoder.go, `Encode`) writes 0x17 and
 * 0x18 as one byte and 0x20 as two; captagent 6 (src/modules/transport/hep/transport_hep.c,
 * `send_hepv3`) writes 0x20 and 0x21 as two bytes; hep-js (index.js) writes 0x24 as text.
 */
export interface HepExtra {
  /**
   * 0x14, spec type uint64: a MAC-48 in the low six bytes, written `aa:bb:cc:dd:ee:ff` (eight
   * groups when the top two bytes are set, see {@link formatMac}).
   */
  srcMac?: string;
  /** 0x15, as {@link srcMac}. */
  dstMac?: string;
  /** 0x16, uint16 (0x0800 IPv4, 0x86dd IPv6, ...). */
  ethernetType?: number;
  /** 0x17, uint8, the TCP flags byte of the captured segment (SYN, PSH, ...). */
  tcpFlags?: number;
  /** 0x18, uint8, the IP TOS / DSCP byte. */
  ipTos?: number;
  /** 0x20, uint16, MOS as sent (agents send MOS x 100). */
  mos?: number;
  /** 0x21, uint16, R-factor as sent. */
  rFactor?: number;
  /** 0x22, text. */
  geoLocation?: string;
  /** 0x23, uint32. */
  jitter?: number;
  /** 0x24, text ("call", "registration", ...). */
  transactionType?: string;
  /** 0x25, text. */
  payloadJsonKeys?: string;
  /** 0x26, text. */
  tagsValues?: string;
  /** 0x27, uint16. */
  tagType?: number;
  /** 0x28, uint16 (recording, interception, ...). */
  eventType?: number;
  /** 0x29, text. */
  groupId?: string;
}

type UintKey = 'ethernetType' | 'tcpFlags' | 'ipTos' | 'mos' | 'rFactor' | 'jitter' | 'tagType' | 'eventType';
type TextKey = 'geoLocation' | 'transactionType' | 'payloadJsonKeys' | 'tagsValues' | 'groupId';
type MacKey = 'srcMac' | 'dstMac';

type ExtraSpec =
  | { type: number; key: UintKey; bytes: 1 | 2 | 4 }
  | { type: number; key: TextKey; bytes: 'text' }
  | { type: number; key: MacKey; bytes: 'mac' };

/** In type order, which is also the order {@link encodeExtra} writes them in. */
const SPECS: readonly ExtraSpec[] = [
  { type: 0x14, key: 'srcMac', bytes: 'mac' },
  { type: 0x15, key: 'dstMac', bytes: 'mac' },
  { type: 0x16, key: 'ethernetType', bytes: 2 },
  { type: 0x17, key: 'tcpFlags', bytes: 1 },
  { type: 0x18, key: 'ipTos', bytes: 1 },
  { type: 0x20, key: 'mos', bytes: 2 },
  { type: 0x21, key: 'rFactor', bytes: 2 },
  { type: 0x22, key: 'geoLocation', bytes: 'text' },
  { type: 0x23, key: 'jitter', bytes: 4 },
  { type: 0x24, key: 'transactionType', bytes: 'text' },
  { type: 0x25, key: 'payloadJsonKeys', bytes: 'text' },
  { type: 0x26, key: 'tagsValues', bytes: 'text' },
  { type: 0x27, key: 'tagType', bytes: 2 },
  { type: 0x28, key: 'eventType', bytes: 2 },
  { type: 0x29, key: 'groupId', bytes: 'text' },
];

/**
 * The spec types MACs as uint64 (eight bytes, the MAC in the low six); a sender that writes the
 * bare six bytes is just as unambiguous, so both sizes are accepted.
 */
const MAC_SIZES: readonly number[] = [8, 6];

/** Generic chunk types decoded here. */
export const HEP_EXTRA_TYPES: ReadonlySet<number> = new Set(SPECS.map((s) => s.type));

/** Accepted value sizes of the fixed-size chunks decoded here (text chunks have any size). */
export const HEP_EXTRA_SIZES: ReadonlyMap<number, readonly number[]> = new Map(
  SPECS.flatMap((s): Array<[number, readonly number[]]> => {
    if (s.bytes === 'text') return [];
    return [[s.type, s.bytes === 'mac' ? MAC_SIZES : [s.bytes]]];
  }),
);

const textDecoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
const textEncoder = new TextEncoder();

function readUint(b: Uint8Array): number {
  let v = 0;
  for (const byte of b) v = v * 256 + byte;
  return v;
}

/**
 * A MAC chunk as text: six lower-case hex bytes joined by `:` when the value is a MAC-48 (six
 * bytes, or eight with the top two zero), else all eight bytes (an EUI-64).
 */
export function formatMac(b: Uint8Array): string {
  const bytes = b.length === 8 && b[0] === 0 && b[1] === 0 ? b.subarray(2) : b;
  return Array.from(bytes, (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Six or eight `:`-separated hex bytes as the eight-byte (uint64) chunk value; undefined if not. */
export function parseMac(text: string): Uint8Array | undefined {
  if (typeof text !== 'string') return undefined;
  const parts = text.split(':');
  if ((parts.length !== 6 && parts.length !== 8) || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) {
    return undefined;
  }
  const out = new Uint8Array(8);
  out.set(
    parts.map((p) => Number.parseInt(p, 16)),
    8 - parts.length,
  );
  return out;
}

/**
 * The chunks decoded here, from the generic chunk values seen in a packet (sizes already checked
 * against {@link HEP_EXTRA_SIZES}); undefined when the packet has none.
 */
export function decodeExtra(seen: ReadonlyMap<number, Uint8Array>): HepExtra | undefined {
  let extra: HepExtra | undefined;
  for (const spec of SPECS) {
    const value = seen.get(spec.type);
    if (value === undefined) continue;
    extra ??= {};
    if (spec.bytes === 'text') extra[spec.key] = textDecoder.decode(value);
    else if (spec.bytes === 'mac') extra[spec.key] = formatMac(value);
    else extra[spec.key] = readUint(value);
  }
  return extra;
}

function invalid(what: string, value: unknown): never {
  throw new SwitchyardError(
    ErrorCode.INVALID_ARGUMENT,
    `encodeHep: invalid extra.${what} ${JSON.stringify(value)}`,
  );
}

/**
 * The chunks for the fields set in `extra`, in type order, as `[type, value]` pairs. Throws
 * SY_ERR_INVALID_ARGUMENT for a number out of its chunk's range or a MAC that does not parse.
 */
export function encodeExtra(extra: HepExtra): Array<[number, Uint8Array]> {
  const out: Array<[number, Uint8Array]> = [];
  for (const spec of SPECS) {
    const value = extra[spec.key];
    if (value === undefined) continue;
    if (spec.bytes === 'text') {
      if (typeof value !== 'string') invalid(spec.key, value);
      out.push([spec.type, textEncoder.encode(value)]);
    } else if (spec.bytes === 'mac') {
      out.push([spec.type, parseMac(value as string) ?? invalid(spec.key, value)]);
    } else {
      const n = value as number;
      if (!Number.isInteger(n) || n < 0 || n > 2 ** (spec.bytes * 8) - 1) invalid(spec.key, value);
      const bytes = new Uint8Array(spec.bytes);
      for (let i = 0; i < spec.bytes; i++) bytes[i] = Math.floor(n / 2 ** (8 * (spec.bytes - 1 - i))) & 0xff;
      out.push([spec.type, bytes]);
    }
  }
  return out;
}

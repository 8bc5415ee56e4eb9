import { ErrorCode, SwitchyardError } from '../core/errors.ts';
import { parseIp } from './hep.ts';

/**
 * A classic libpcap file writer for exporting captured SIP to Wireshark/tshark. Pure, no I/O.
 *
 * Format choices, all so that `tshark -Y sip` shows each captured message as one SIP message:
 * - Classic pcap (magic 0xa1b2c3d4, v2.4, microsecond timestamps), little-endian, snaplen 262144:
 *   every reader supports it; pcapng buys nothing here.
 * - LINKTYPE_ETHERNET (1) framing IPv4 or IPv6, then UDP. Ethernet is what every dissector
 *   path and tool expects from a capture; LINKTYPE_RAW is read fine by tshark but less so by
 *   older tools. The MAC addresses are made up (locally administered `02:00:` + the last four
 *   bytes of the IP address) so each host keeps one MAC in Wireshark's endpoint views.
 * - Every message is written as one UDP datagram, whatever its `transport`. HEP gives us whole
 *   SIP messages, not TCP segments: as TCP without the handshake and real sequence numbers,
 *   tshark would flag lost segments and need reassembly, and TLS/WS traffic (already decrypted
 *   by the sender) on port 5061/443 would be handed to the TLS dissector. As UDP each message is
 *   decoded on its own, exactly as captured. The ports are kept; the Via header still says the
 *   real transport.
 * - IPv4 header checksum and UDP checksum are computed (the UDP one is mandatory over IPv6).
 * - A payload longer than one UDP datagram can carry (65507 bytes over IPv4, 65527 over IPv6: the
 *   16-bit IPv4 total length and UDP length fields) is truncated to that size. IP fragmentation
 *   would not help, as the UDP length field limits the reassembled datagram the same way. No SIP
 *   message that came in a HEP packet can be that large (a HEP packet is at most 65535 bytes with
 *   its own headers), so only inflated compressed payloads or direct callers can hit this.
 */

/** The transports of src/capture/model.ts; all are written as UDP (see above). */
export type PcapTransport = 'udp' | 'tcp' | 'tls' | 'sctp' | 'ws' | 'wss';

export interface PcapMessage {
  /** Capture time in microseconds since the Unix epoch. */
  tsUs: number;
  srcIp: string;
  srcPort: number;
  dstIp: string;
  dstPort: number;
  transport: PcapTransport;
  /** The SIP message, exactly as captured. */
  raw: Uint8Array;
}

export const PCAP_LINKTYPE_ETHERNET = 1;
export const PCAP_SNAPLEN = 262_144;
/** 65535 - 20 (IPv4 header) - 8 (UDP header). */
export const PCAP_MAX_UDP_PAYLOAD_V4 = 65_507;
/** 65535 (IPv6 payload length) - 8 (UDP header). */
export const PCAP_MAX_UDP_PAYLOAD_V6 = 65_527;

const GLOBAL_HEADER_BYTES = 24;
const RECORD_HEADER_BYTES = 16;
const ETHERNET_BYTES = 14;
const IPV4_BYTES = 20;
const IPV6_BYTES = 40;
const UDP_BYTES = 8;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const IPPROTO_UDP = 17;
const TTL = 64;

function invalid(what: string, value: unknown): never {
  throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `pcapFile: invalid ${what} ${JSON.stringify(value)}`);
}

function port(what: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) invalid(what, value);
  return value;
}

/** One's-complement sum of 16-bit big-endian words (RFC 1071), not yet folded or inverted. */
function sum16(b: Uint8Array, from: number, to: number, acc = 0): number {
  let s = acc;
  let i = from;
  for (; i + 1 < to; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (i < to) s += b[i]! << 8;
  return s;
}

function fold(s: number): number {
  let v = s;
  while (v > 0xffff) v = (v & 0xffff) + Math.floor(v / 0x10000);
  return ~v & 0xffff;
}

function mac(ip: Uint8Array): Uint8Array {
  return Uint8Array.of(0x02, 0x00, ...ip.subarray(ip.length - 4));
}

interface Prepared {
  src: Uint8Array;
  dst: Uint8Array;
  payload: Uint8Array;
  frameBytes: number;
}

function prepare(m: PcapMessage, index: number): Prepared {
  const src = parseIp(m.srcIp) ?? invalid(`srcIp of message ${index}`, m.srcIp);
  const dst = parseIp(m.dstIp) ?? invalid(`dstIp of message ${index}`, m.dstIp);
  if (src.length !== dst.length)
    invalid(`address pair of message ${index} (mixed families)`, [m.srcIp, m.dstIp]);
  port(`srcPort of message ${index}`, m.srcPort);
  port(`dstPort of message ${index}`, m.dstPort);
  if (!Number.isFinite(m.tsUs) || m.tsUs < 0) invalid(`tsUs of message ${index}`, m.tsUs);
  if (!(m.raw instanceof Uint8Array)) invalid(`raw of message ${index}`, typeof m.raw);
  const v6 = src.length === 16;
  const payload = m.raw.subarray(0, v6 ? PCAP_MAX_UDP_PAYLOAD_V6 : PCAP_MAX_UDP_PAYLOAD_V4);
  const frameBytes = ETHERNET_BYTES + (v6 ? IPV6_BYTES : IPV4_BYTES) + UDP_BYTES + payload.length;
  return { src, dst, payload, frameBytes };
}

/**
 * A whole pcap file holding one Ethernet/IP/UDP frame per message, in the order given (sort by
 * `tsUs` first if the order matters to the reader). Invalid addresses, ports or timestamps are
 * programmer errors and throw SY_ERR_INVALID_ARGUMENT.
 *
 * @example
 *   await writeFile('call.pcap', pcapFile(messages));  // then: wireshark call.pcap
 */
export function pcapFile(messages: readonly PcapMessage[]): Uint8Array {
  const prepared = messages.map(prepare);
  const total = prepared.reduce((n, p) => n + RECORD_HEADER_BYTES + p.frameBytes, GLOBAL_HEADER_BYTES);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  // Global header, little-endian (readers detect byte order from the magic).
  view.setUint32(0, 0xa1b2c3d4, true);
  view.setUint16(4, 2, true);
  view.setUint16(6, 4, true);
  view.setInt32(8, 0, true); // thiszone: timestamps are UTC
  view.setUint32(12, 0, true); // sigfigs
  view.setUint32(16, PCAP_SNAPLEN, true);
  view.setUint32(20, PCAP_LINKTYPE_ETHERNET, true);

  let off = GLOBAL_HEADER_BYTES;
  prepared.forEach((p, index) => {
    const m = messages[index]!;
    const tsUs = Math.floor(m.tsUs);
    view.setUint32(off, Math.floor(tsUs / 1e6), true);
    view.setUint32(off + 4, tsUs % 1e6, true);
    view.setUint32(off + 8, p.frameBytes, true);
    view.setUint32(off + 12, p.frameBytes, true);
    off += RECORD_HEADER_BYTES;
    off = writeFrame(out, view, off, p, m, index);
  });
  return out;
}

function writeFrame(
  out: Uint8Array,
  view: DataView,
  start: number,
  p: Prepared,
  m: PcapMessage,
  index: number,
): number {
  const v6 = p.src.length === 16;
  out.set(mac(p.dst), start);
  out.set(mac(p.src), start + 6);
  view.setUint16(start + 12, v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4);
  const ip = start + ETHERNET_BYTES;
  const udpLength = UDP_BYTES + p.payload.length;
  let udp: number;
  // UDP checksum pseudo-header: addresses, protocol, UDP length (RFC 768; RFC 8200 §8.1 for IPv6).
  let pseudo = sum16(p.src, 0, p.src.length) + sum16(p.dst, 0, p.dst.length) + IPPROTO_UDP + udpLength;
  if (v6) {
    view.setUint32(ip, 0x60000000); // version 6, traffic class 0, flow label 0
    view.setUint16(ip + 4, udpLength);
    out[ip + 6] = IPPROTO_UDP;
    out[ip + 7] = TTL;
    out.set(p.src, ip + 8);
    out.set(p.dst, ip + 24);
    udp = ip + IPV6_BYTES;
  } else {
    out[ip] = 0x45; // version 4, 5-word header
    view.setUint16(ip + 2, IPV4_BYTES + udpLength);
    view.setUint16(ip + 4, index & 0xffff); // identification
    view.setUint16(ip + 6, 0x4000); // don't fragment
    out[ip + 8] = TTL;
    out[ip + 9] = IPPROTO_UDP;
    out.set(p.src, ip + 12);
    out.set(p.dst, ip + 16);
    view.setUint16(ip + 10, fold(sum16(out, ip, ip + IPV4_BYTES)));
    udp = ip + IPV4_BYTES;
  }
  view.setUint16(udp, m.srcPort);
  view.setUint16(udp + 2, m.dstPort);
  view.setUint16(udp + 4, udpLength);
  out.set(p.payload, udp + UDP_BYTES);
  pseudo = sum16(out, udp, udp + udpLength, pseudo);
  // A computed 0 is sent as 0xffff: 0 means "no checksum" (RFC 768), which IPv6 forbids.
  view.setUint16(udp + 6, fold(pseudo) || 0xffff);
  return udp + udpLength;
}

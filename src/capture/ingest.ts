import { decodeHep, HEP_DROP_REASONS, type HepDropReason, type HepPacket } from '../proto/hep.ts';
import { sipCaptureFields } from '../proto/sip-fields.ts';
import { parseSipMessage } from '../proto/sip-message.ts';
import type { CapturedMessage, Transport } from './model.ts';

/**
 * One received HEP packet to one CapturedMessage, or the reason it is dropped. Pure: the server
 * (server.ts) owns sockets, counting and batching. Every reason is a fixed label value for
 * `switchyard_capture_dropped_total{reason}`, so a flood of garbage cannot grow the metrics.
 */

export type IngestDropReason =
  | HepDropReason
  /** The auth key (chunk 14) is missing or wrong while the server requires one. */
  | 'auth'
  /** A HEP payload that is not SIP (RTCP, logs, ...: protocol type other than 1). */
  | 'not-sip'
  /** The SIP message cannot be parsed (start line, headers, Content-Length). */
  | 'sip-parse'
  /** Parsed, but without a usable Call-ID, CSeq, From or To. */
  | 'sip-fields'
  /** An OPTIONS keep-alive or its answer, dropped unless `keepKeepalives`. */
  | 'keepalive';

/** Reasons the server itself adds: queue full, bad TCP framing, a stalled TCP peer. */
export type ServerDropReason = 'overload' | 'tcp-framing' | 'tcp-stalled';

export type DropReason = IngestDropReason | ServerDropReason;

export const DROP_REASONS: readonly DropReason[] = [
  ...HEP_DROP_REASONS,
  'auth',
  'not-sip',
  'sip-parse',
  'sip-fields',
  'keepalive',
  'overload',
  'tcp-framing',
  'tcp-stalled',
];

export interface IngestOptions {
  /** Required HEP auth key; packets without it or with another one are dropped. */
  authKey?: string;
  /** Header carrying the B-leg correlation key, e.g. `X-CID`. */
  correlationHeader?: string;
  /** Keep OPTIONS keep-alives (dropped and counted by default: they drown the calls). */
  keepKeepalives?: boolean;
}

export type IngestResult =
  | { ok: true; message: CapturedMessage; hep: HepPacket }
  | { ok: false; reason: IngestDropReason; detail: string };

const HEP_PROTO_SIP = 1;

/** HEP's IP protocol number (chunk 2) to a transport name. Kamailio sends 22 for TLS. */
function transportOf(protocol: number): Transport {
  switch (protocol) {
    case 6:
      return 'tcp';
    case 22:
      return 'tls';
    case 132:
      return 'sctp';
    default:
      return 'udp';
  }
}

export function ingestHep(buf: Uint8Array, opts: IngestOptions, nowUs: number): IngestResult {
  const decoded = decodeHep(buf);
  if (!decoded.ok) return decoded;
  const hep = decoded.value;
  if (opts.authKey !== undefined && hep.authKey !== opts.authKey) {
    return {
      ok: false,
      reason: 'auth',
      detail: hep.authKey === undefined ? 'no auth key' : 'wrong auth key',
    };
  }
  if (hep.protoType !== HEP_PROTO_SIP && hep.protoType !== 0) {
    return { ok: false, reason: 'not-sip', detail: `HEP protocol type ${hep.protoType}` };
  }
  const sip = parseSipMessage(hep.payload);
  if (!sip.ok) return { ok: false, reason: 'sip-parse', detail: sip.reason };
  const fieldOpts = opts.correlationHeader === undefined ? {} : { correlationHeader: opts.correlationHeader };
  const fields = sipCaptureFields(sip.value, fieldOpts);
  if (!fields.ok) return { ok: false, reason: 'sip-fields', detail: fields.reason };
  const f = fields.value;
  if (
    !opts.keepKeepalives &&
    (f.method === 'OPTIONS' || (f.method === undefined && f.cseq.endsWith(' OPTIONS')))
  ) {
    return { ok: false, reason: 'keepalive', detail: 'OPTIONS' };
  }
  const tsUs = hep.tsSec > 0 ? hep.tsSec * 1_000_000 + Math.min(hep.tsUsec, 999_999) : nowUs;
  const message: CapturedMessage = {
    tsUs,
    srcIp: hep.srcIp,
    srcPort: hep.srcPort,
    dstIp: hep.dstIp,
    dstPort: hep.dstPort,
    transport: transportOf(hep.protocol),
    captureId: hep.captureId,
    callId: f.callId,
    cseq: f.cseq,
    fromUser: f.fromUser,
    toUser: f.toUser,
    // A copy: the payload is a view into the received packet, which must not be kept alive.
    raw: new Uint8Array(hep.payload),
  };
  if (f.method !== undefined) message.method = f.method;
  if (f.status !== undefined) message.status = f.status;
  if (f.fromTag !== undefined) message.fromTag = f.fromTag;
  if (f.toTag !== undefined) message.toTag = f.toTag;
  if (f.xCorrelation !== undefined) message.xCorrelation = f.xCorrelation;
  if (hep.correlationId !== undefined && hep.correlationId !== '') message.correlationId = hep.correlationId;
  return { ok: true, message, hep };
}

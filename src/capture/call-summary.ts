import type { CallStatus, CallSummary, CapturedMessage } from './model.ts';

/**
 * Folding captured messages into a per-Call-ID summary, incrementally.
 *
 * A CallSummary alone cannot be updated by a later batch: a 180 that arrives after the batch
 * holding its INVITE needs the INVITE's time, a late 200 must beat an earlier 487, and so on.
 * So the fold works on a CallState (the summary's sufficient statistics, plain JSON that the
 * stores persist next to the summary columns) and `summarizeCall` derives the CallSummary.
 *
 * Every field of a CallState is a minimum, a maximum (over a total order), a sum or a set
 * union, so `mergeCallStates` is commutative and associative: folding a call's messages in one
 * batch, in any split into batches, or in any arrival order gives the same state. That is what
 * lets a store apply each batch on its own (and lets two writers merge into one row under a row
 * lock) without re-reading the call's messages. Ties on equal timestamps are broken by content
 * (CSeq number, status code, method, user), never by arrival order.
 *
 * Retransmissions and the same message reported by several capture agents are stored (and
 * counted in messageCount, which is "messages stored"), but cannot move anything else: times
 * are earliest-seen, final responses are chosen by (CSeq, time, code), sets are sets.
 */

/** One final response, ranked by (cseq, tsUs, status): the latest transaction wins. */
export interface FinalMark {
  cseq: number;
  tsUs: number;
  status: number;
}

/** The message a call takes its identity (method, From and To users) from. */
export interface Anchor {
  /**
   * 0 initial INVITE (no To tag), 1 other out-of-dialog request, 2 in-dialog request, CANCEL or
   * ACK, 3 response. The lowest rank, then the earliest time, then content, wins.
   */
  rank: number;
  tsUs: number;
  cseq: number;
  method: string;
  fromUser: string;
  toUser: string;
}

/** What the store persists per call; `summarizeCall` turns it into a CallSummary. */
export interface CallState {
  callId: string;
  firstTsUs: number;
  lastTsUs: number;
  messageCount: number;
  /** Sum of raw message sizes. */
  bytes: number;
  anchor: Anchor;
  /** Earliest initial INVITE (no To tag). */
  inviteTsUs?: number;
  /** Earliest 18x or 2xx response to an INVITE. */
  progressTsUs?: number;
  /** Earliest 2xx response to an INVITE (ties: lowest code). */
  answer?: { tsUs: number; status: number };
  /** Latest (by CSeq, then time, then code) final response >= 300 to an INVITE. */
  inviteFinal?: FinalMark;
  cancelTsUs?: number;
  byeTsUs?: number;
  /** Latest final response (>= 200) per non-INVITE method, sorted by method. */
  finals: ({ method: string } & FinalMark)[];
  /** Methods that got a provisional (1xx) response, sorted. */
  provisional: string[];
  /** Sorted `ip:port` strings (IPv6 as `[addr]:port`). */
  endpoints: string[];
  /** Sorted ascending. */
  captureIds: number[];
  /** Sorted; the call's own Call-ID is never one of them. */
  correlation: string[];
}

/** `ip:port`, with IPv6 addresses in brackets so the port stays unambiguous (RFC 3986 §3.2.2). */
export function formatEndpoint(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** The host part of an endpoint made by formatEndpoint (brackets removed). */
export function endpointHost(endpoint: string): string {
  const v6 = /^\[(.*)\]:\d+$/.exec(endpoint);
  if (v6) return v6[1] ?? '';
  const i = endpoint.lastIndexOf(':');
  return i < 0 ? endpoint : endpoint.slice(0, i);
}

const CSEQ = /^\s*(\d{1,10})\s+(\S+)\s*$/;

/** `1 INVITE` -> [1, 'INVITE']; an unparsable CSeq gives [0, ''] (RFC 3261 §20.16). */
export function parseCseq(cseq: string): [number, string] {
  const m = CSEQ.exec(cseq);
  if (!m) return [0, ''];
  return [Number(m[1]), m[2] ?? ''];
}

// ---- total orders -----------------------------------------------------------------------------

function cmp(a: number | string, b: number | string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareAnchor(a: Anchor, b: Anchor): number {
  return (
    cmp(a.rank, b.rank) ||
    cmp(a.tsUs, b.tsUs) ||
    cmp(a.cseq, b.cseq) ||
    cmp(a.method, b.method) ||
    cmp(a.fromUser, b.fromUser) ||
    cmp(a.toUser, b.toUser)
  );
}

function compareFinal(a: FinalMark, b: FinalMark): number {
  return cmp(a.cseq, b.cseq) || cmp(a.tsUs, b.tsUs) || cmp(a.status, b.status);
}

function minOpt(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a < b ? a : b;
}

function laterFinal<T extends FinalMark>(a: T | undefined, b: T | undefined): T | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return compareFinal(a, b) >= 0 ? a : b;
}

function earlierAnswer(
  a: CallState['answer'],
  b: CallState['answer'],
): { tsUs: number; status: number } | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return (cmp(a.tsUs, b.tsUs) || cmp(a.status, b.status)) <= 0 ? a : b;
}

// ---- the accumulator --------------------------------------------------------------------------

/** Mutable working form of a CallState: sets instead of sorted arrays. */
interface Acc {
  callId: string;
  firstTsUs: number;
  lastTsUs: number;
  messageCount: number;
  bytes: number;
  anchor: Anchor;
  inviteTsUs: number | undefined;
  progressTsUs: number | undefined;
  answer: { tsUs: number; status: number } | undefined;
  inviteFinal: FinalMark | undefined;
  cancelTsUs: number | undefined;
  byeTsUs: number | undefined;
  finals: Map<string, FinalMark>;
  provisional: Set<string>;
  endpoints: Set<string>;
  captureIds: Set<number>;
  correlation: Set<string>;
}

function accFromState(s: CallState): Acc {
  return {
    callId: s.callId,
    firstTsUs: s.firstTsUs,
    lastTsUs: s.lastTsUs,
    messageCount: s.messageCount,
    bytes: s.bytes,
    anchor: s.anchor,
    inviteTsUs: s.inviteTsUs,
    progressTsUs: s.progressTsUs,
    answer: s.answer,
    inviteFinal: s.inviteFinal,
    cancelTsUs: s.cancelTsUs,
    byeTsUs: s.byeTsUs,
    finals: new Map(s.finals.map((f) => [f.method, { cseq: f.cseq, tsUs: f.tsUs, status: f.status }])),
    provisional: new Set(s.provisional),
    endpoints: new Set(s.endpoints),
    captureIds: new Set(s.captureIds),
    correlation: new Set(s.correlation),
  };
}

function anchorOf(m: CapturedMessage, cseq: number, txMethod: string): Anchor {
  let rank = 3;
  if (m.method !== undefined) {
    if (m.method === 'CANCEL' || m.method === 'ACK' || m.toTag) rank = 2;
    else rank = m.method === 'INVITE' ? 0 : 1;
  }
  return { rank, tsUs: m.tsUs, cseq, method: txMethod, fromUser: m.fromUser, toUser: m.toUser };
}

function accFromMessage(m: CapturedMessage): Acc {
  const [cseq, cseqMethod] = parseCseq(m.cseq);
  const txMethod = m.method ?? cseqMethod;
  return {
    callId: m.callId,
    firstTsUs: m.tsUs,
    lastTsUs: m.tsUs,
    messageCount: 0,
    bytes: 0,
    anchor: anchorOf(m, cseq, txMethod),
    inviteTsUs: undefined,
    progressTsUs: undefined,
    answer: undefined,
    inviteFinal: undefined,
    cancelTsUs: undefined,
    byeTsUs: undefined,
    finals: new Map(),
    provisional: new Set(),
    endpoints: new Set(),
    captureIds: new Set(),
    correlation: new Set(),
  };
}

/** Adds one message to the accumulator (the accumulator's call). */
function addMessage(acc: Acc, m: CapturedMessage): void {
  const [cseq, cseqMethod] = parseCseq(m.cseq);
  const ts = m.tsUs;
  if (ts < acc.firstTsUs) acc.firstTsUs = ts;
  if (ts > acc.lastTsUs) acc.lastTsUs = ts;
  acc.messageCount += 1;
  acc.bytes += m.raw.byteLength;
  const isRequest = m.method !== undefined;
  const txMethod = m.method ?? cseqMethod;
  const candidate = anchorOf(m, cseq, txMethod);
  if (compareAnchor(candidate, acc.anchor) < 0) acc.anchor = candidate;

  if (isRequest) {
    if (m.method === 'INVITE' && !m.toTag) acc.inviteTsUs = minOpt(acc.inviteTsUs, ts);
    else if (m.method === 'CANCEL') acc.cancelTsUs = minOpt(acc.cancelTsUs, ts);
    else if (m.method === 'BYE') acc.byeTsUs = minOpt(acc.byeTsUs, ts);
  } else if (m.status !== undefined) {
    const code = m.status;
    if (code < 200) {
      if (txMethod) acc.provisional.add(txMethod);
      if (txMethod === 'INVITE' && code >= 180 && code <= 189)
        acc.progressTsUs = minOpt(acc.progressTsUs, ts);
    } else if (txMethod === 'INVITE') {
      if (code < 300) {
        acc.progressTsUs = minOpt(acc.progressTsUs, ts);
        acc.answer = earlierAnswer(acc.answer, { tsUs: ts, status: code });
      } else {
        acc.inviteFinal = laterFinal(acc.inviteFinal, { cseq, tsUs: ts, status: code });
      }
    } else {
      const mark = laterFinal(acc.finals.get(txMethod), { cseq, tsUs: ts, status: code });
      if (mark) acc.finals.set(txMethod, mark);
    }
  }

  acc.endpoints.add(formatEndpoint(m.srcIp, m.srcPort));
  acc.endpoints.add(formatEndpoint(m.dstIp, m.dstPort));
  acc.captureIds.add(m.captureId);
  // Asterisk's res_hep puts the leg's own Call-ID in the HEP correlation id (sipcapture/homer#410):
  // that links nothing, so it is not a key.
  if (m.correlationId && m.correlationId !== m.callId) acc.correlation.add(m.correlationId);
  if (m.xCorrelation && m.xCorrelation !== m.callId) acc.correlation.add(m.xCorrelation);
}

/** Merges state `s` into the accumulator. */
function addState(acc: Acc, s: CallState): void {
  acc.firstTsUs = Math.min(acc.firstTsUs, s.firstTsUs);
  acc.lastTsUs = Math.max(acc.lastTsUs, s.lastTsUs);
  acc.messageCount += s.messageCount;
  acc.bytes += s.bytes;
  if (compareAnchor(s.anchor, acc.anchor) < 0) acc.anchor = s.anchor;
  acc.inviteTsUs = minOpt(acc.inviteTsUs, s.inviteTsUs);
  acc.progressTsUs = minOpt(acc.progressTsUs, s.progressTsUs);
  acc.answer = earlierAnswer(acc.answer, s.answer);
  acc.inviteFinal = laterFinal(acc.inviteFinal, s.inviteFinal);
  acc.cancelTsUs = minOpt(acc.cancelTsUs, s.cancelTsUs);
  acc.byeTsUs = minOpt(acc.byeTsUs, s.byeTsUs);
  for (const f of s.finals) {
    const mark = laterFinal(acc.finals.get(f.method), { cseq: f.cseq, tsUs: f.tsUs, status: f.status });
    if (mark) acc.finals.set(f.method, mark);
  }
  for (const p of s.provisional) acc.provisional.add(p);
  for (const e of s.endpoints) acc.endpoints.add(e);
  for (const c of s.captureIds) acc.captureIds.add(c);
  for (const k of s.correlation) acc.correlation.add(k);
}

const byText = (a: string, b: string) => cmp(a, b);

function stateFromAcc(acc: Acc): CallState {
  const s: CallState = {
    callId: acc.callId,
    firstTsUs: acc.firstTsUs,
    lastTsUs: acc.lastTsUs,
    messageCount: acc.messageCount,
    bytes: acc.bytes,
    anchor: { ...acc.anchor },
    finals: [...acc.finals]
      .map(([method, f]) => ({ method, cseq: f.cseq, tsUs: f.tsUs, status: f.status }))
      .sort((a, b) => byText(a.method, b.method)),
    provisional: [...acc.provisional].sort(byText),
    endpoints: [...acc.endpoints].sort(byText),
    captureIds: [...acc.captureIds].sort((a, b) => a - b),
    correlation: [...acc.correlation].sort(byText),
  };
  if (acc.inviteTsUs !== undefined) s.inviteTsUs = acc.inviteTsUs;
  if (acc.progressTsUs !== undefined) s.progressTsUs = acc.progressTsUs;
  if (acc.answer !== undefined) s.answer = { ...acc.answer };
  if (acc.inviteFinal !== undefined) s.inviteFinal = { ...acc.inviteFinal };
  if (acc.cancelTsUs !== undefined) s.cancelTsUs = acc.cancelTsUs;
  if (acc.byeTsUs !== undefined) s.byeTsUs = acc.byeTsUs;
  return s;
}

// ---- public API -------------------------------------------------------------------------------

/**
 * Applies one batch of messages of a single call to `state` (undefined for a call not seen
 * before) and returns the new state; `state` is not modified. Throws if a message belongs to
 * another call, or if there is neither a state nor a message.
 */
export function foldCallState(state: CallState | undefined, messages: readonly CapturedMessage[]): CallState {
  const first = messages[0];
  let acc: Acc;
  if (state !== undefined) acc = accFromState(state);
  else if (first !== undefined) acc = accFromMessage(first);
  else throw new RangeError('foldCallState: no state and no messages');
  for (const m of messages) {
    if (m.callId !== acc.callId)
      throw new RangeError(`foldCallState: message of call ${m.callId} folded into ${acc.callId}`);
    addMessage(acc, m);
  }
  return stateFromAcc(acc);
}

/** The state of `b` folded into `a` (same call). Commutative and associative. */
export function mergeCallStates(a: CallState, b: CallState): CallState {
  if (a.callId !== b.callId)
    throw new RangeError(`mergeCallStates: cannot merge call ${b.callId} into ${a.callId}`);
  const acc = accFromState(a);
  addState(acc, b);
  return stateFromAcc(acc);
}

/** Groups a batch by Call-ID (first appearance order) and folds each group from scratch. */
export function foldBatch(messages: readonly CapturedMessage[]): Map<string, CallState> {
  const accs = new Map<string, Acc>();
  for (const m of messages) {
    let acc = accs.get(m.callId);
    if (!acc) {
      acc = accFromMessage(m);
      accs.set(m.callId, acc);
    }
    addMessage(acc, m);
  }
  const out = new Map<string, CallState>();
  for (const [id, acc] of accs) out.set(id, stateFromAcc(acc));
  return out;
}

/** Status of a final response code (RFC 3261 §21). */
function statusOfFinal(code: number): CallStatus {
  if (code >= 200 && code < 300) return 'answered';
  if (code === 486 || code === 600) return 'busy';
  if (code === 487) return 'cancelled';
  return 'failed';
}

/**
 * The call's status. For INVITE dialogs: any 2xx to the INVITE makes it answered (a later failed
 * re-INVITE does not undo that, and a 200 that crosses a CANCEL wins, RFC 3261 §9.2); else a
 * CANCEL makes it cancelled; else the final response of the latest INVITE transaction decides
 * (so a 407 challenge followed by a 486 is busy); else ringing when a provisional was seen,
 * unknown when not even that. For other methods (REGISTER, MESSAGE, OPTIONS...) the final
 * response of the latest transaction decides, with the same code mapping (a 2xx counts as
 * `answered`).
 */
function statusOf(s: CallState): { status: CallStatus; finalStatus?: number } {
  const method = s.anchor.method;
  if (method === 'INVITE') {
    if (s.answer) return { status: 'answered', finalStatus: s.answer.status };
    const finalStatus = s.inviteFinal?.status;
    const withFinal = finalStatus === undefined ? {} : { finalStatus };
    if (s.cancelTsUs !== undefined) return { status: 'cancelled', ...withFinal };
    if (finalStatus !== undefined) return { status: statusOfFinal(finalStatus), finalStatus };
    return { status: s.provisional.includes('INVITE') ? 'ringing' : 'unknown' };
  }
  const final = s.finals.find((f) => f.method === method);
  if (final) return { status: statusOfFinal(final.status), finalStatus: final.status };
  return { status: s.provisional.includes(method) ? 'ringing' : 'unknown' };
}

/** The CallSummary a state describes. */
export function summarizeCall(s: CallState): CallSummary {
  const { status, finalStatus } = statusOf(s);
  const summary: CallSummary = {
    callId: s.callId,
    firstTsUs: s.firstTsUs,
    lastTsUs: s.lastTsUs,
    method: s.anchor.method,
    fromUser: s.anchor.fromUser,
    toUser: s.anchor.toUser,
    status,
    endpoints: [...s.endpoints],
    captureIds: [...s.captureIds],
    messageCount: s.messageCount,
    correlation: [...s.correlation],
  };
  if (finalStatus !== undefined) summary.finalStatus = finalStatus;
  if (s.anchor.method === 'INVITE' && s.inviteTsUs !== undefined && s.progressTsUs !== undefined)
    summary.setupDelayUs = Math.max(0, s.progressTsUs - s.inviteTsUs);
  if (s.answer !== undefined && s.byeTsUs !== undefined)
    summary.durationUs = Math.max(0, s.byeTsUs - s.answer.tsUs);
  return summary;
}

/** Convenience: the summary of `messages` (all of one call) on top of `state`. */
export function summarizeMessages(
  messages: readonly CapturedMessage[],
  state?: CallState,
): { state: CallState; summary: CallSummary } {
  const next = foldCallState(state, messages);
  return { state: next, summary: summarizeCall(next) };
}

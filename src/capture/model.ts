/**
 * The capture data model: what a received HEP packet becomes once decoded, and what the store
 * keeps. Shared by the HEP server (src/capture/server.ts), the stores (src/capture/store-*.ts),
 * the query API and the exporters (pcap, text, SVG ladder). Plain data, no behaviour.
 */

export type Transport = 'udp' | 'tcp' | 'tls' | 'sctp' | 'ws' | 'wss';

/** One SIP message as captured, with the HEP envelope's facts and what we parsed out of it. */
export interface CapturedMessage {
  /** Capture time from the HEP timestamp chunks, in microseconds since the Unix epoch. */
  tsUs: number;
  srcIp: string;
  srcPort: number;
  dstIp: string;
  dstPort: number;
  transport: Transport;
  /** HEP capture agent id (chunk 12); identifies the sender, e.g. one Kamailio. */
  captureId: number;
  /** HEP correlation id (chunk 17) when the sender set one. */
  correlationId?: string;
  /** Call-ID header. Messages without one are not stored (counted as dropped). */
  callId: string;
  /** Request method, or undefined for a response. */
  method?: string;
  /** Response status code, or undefined for a request. */
  status?: number;
  /** CSeq number and method, e.g. `1 INVITE`. */
  cseq: string;
  /** User part of the From and To URIs (the calling and called number). */
  fromUser: string;
  toUser: string;
  fromTag?: string;
  toTag?: string;
  /** Value of the configured B-leg correlation header (e.g. X-CID) when present. */
  xCorrelation?: string;
  /** The SIP message exactly as received. */
  raw: Uint8Array;
}

/** A stored message: the captured one plus its store-assigned id. */
export interface StoredMessage extends CapturedMessage {
  id: number;
}

export type CallStatus = 'ringing' | 'answered' | 'failed' | 'cancelled' | 'busy' | 'unknown';

/** Per-Call-ID summary, maintained as messages arrive. */
export interface CallSummary {
  callId: string;
  firstTsUs: number;
  lastTsUs: number;
  method: string;
  fromUser: string;
  toUser: string;
  /** Final status code of the initial INVITE (or other dialog-creating request), if seen. */
  finalStatus?: number;
  status: CallStatus;
  /** Microseconds from the INVITE to its first 18x/2xx response, if seen. */
  setupDelayUs?: number;
  /** Microseconds from the 2xx to the BYE, if both seen. */
  durationUs?: number;
  /** Every `ip:port` that sent or received a message of this call. */
  endpoints: string[];
  /** Every HEP capture id that reported this call. */
  captureIds: number[];
  /** Messages stored for this call (retransmissions included; retention may lower it). */
  messageCount: number;
  /** Correlation keys (HEP correlation id, X-CID value) linking this call to other legs. */
  correlation: string[];
}

/** A control-plane event (node drained, node down, dispatcher reload, intent change). */
export interface ControlEvent {
  tsUs: number;
  /** e.g. `node.phase`, `node.state`, `dispatcher.reload`, `intent.set`. */
  kind: string;
  /** Node id, dispatcher name or other subject. */
  subject: string;
  detail: Record<string, unknown>;
}

export interface CallQuery {
  /** Only calls whose first message is at or after this time (µs). */
  sinceUs?: number;
  /** Only calls whose first message is at or before this time (µs). */
  untilUs?: number;
  /** Matches from or to user exactly. */
  number?: string;
  status?: CallStatus;
  /** Only calls that touched this `ip:port` or host (IPv6: `[addr]:port`, `addr` or `[addr]`). */
  endpoint?: string;
  /** At most this many calls, newest first (default 100, capped at 10,000). */
  limit?: number;
}

export interface RetentionPolicy {
  /**
   * Delete messages older than this. A call whose messages are all gone is deleted; a call still
   * going on at the cutoff keeps its summary (which describes the whole call as seen) and its
   * newer messages. Control events older than this are deleted too.
   */
  maxAgeMs?: number;
  /** Keep total stored raw bytes at or under this, deleting whole calls, oldest first. */
  maxBytes?: number;
}

export interface StoreStats {
  messages: number;
  calls: number;
  bytes: number;
  oldestTsUs?: number;
  newestTsUs?: number;
  /** The policy of the last applyRetention (by any process on this store); {} if none yet. */
  retention: RetentionPolicy;
  /** What the last applyRetention removed, and when (its `nowUs`). */
  lastRetention?: { atUs: number; removedMessages: number; removedCalls: number };
}

/** What `CaptureStore.liveCalls` counts. */
export interface LiveCallsQuery {
  /**
   * Only calls whose first message is at or after this time (µs). Bounds the work and forgets
   * calls whose BYE (or final response) was never captured: a live-call poller passes "now minus
   * a window" (4 h by default, src/capture/live-calls.ts).
   */
  sinceUs: number;
  /**
   * Only these endpoints, exactly as CallSummary.endpoints spells them (`ip:port`, IPv6 as
   * `[addr]:port`; a bare host matches nothing). Each one is in the result, 0s included. Absent:
   * every endpoint that has a live call.
   */
  endpoints?: string[];
}

/** Live calls at one endpoint. */
export interface LiveCallCount {
  /**
   * Live SIP dialogs (one per Call-ID) that touched the endpoint: INVITE answered (2xx) with no
   * BYE seen yet, or still ringing (a provisional seen, no final response and no CANCEL yet).
   * The analogue of Asterisk's channels: what a stop would cut, what a drain waits for.
   */
  channels: number;
  /**
   * Distinct calls among those dialogs: legs that share a correlation key (HEP correlation id,
   * X-CID) or name each other's Call-ID count once, as Asterisk's Linkedid does.
   */
  calls: number;
  /** Of `channels`, those not answered yet. */
  ringing: number;
}

/** One query API over SQLite and PostgreSQL; the same conformance suite runs against both. */
export interface CaptureStore {
  readonly kind: 'sqlite' | 'postgres';
  /** Writes a batch in one transaction and updates the call summaries. */
  insertBatch(messages: CapturedMessage[]): Promise<void>;
  recordEvent(event: ControlEvent): Promise<void>;
  searchCalls(query: CallQuery): Promise<CallSummary[]>;
  getCall(callId: string): Promise<CallSummary | undefined>;
  /** Messages of these Call-IDs in time order (ties by id). */
  messagesOf(callIds: string[]): Promise<StoredMessage[]>;
  /** Call-IDs sharing a correlation key with this one (other legs), not including itself. */
  relatedCallIds(callId: string): Promise<string[]>;
  /** Events with fromUs <= tsUs <= toUs, in time order (ties by insertion). */
  eventsBetween(fromUs: number, toUs: number): Promise<ControlEvent[]>;
  /**
   * Live calls per endpoint, derived from the captured SIP (for backends without AMI): INVITE
   * dialogs first seen at or after `sinceUs` that are answered and not hung up (no BYE), or still
   * ringing. Cheap on big stores: it reads a partial index of exactly those calls (the engine
   * keeps it as call rows change), never the finished ones. Endpoints are those of the whole
   * dialog, so a call that failed over from one backend to another (serial forking, same
   * Call-ID) counts at both.
   */
  liveCalls(query: LiveCallsQuery): Promise<Map<string, LiveCallCount>>;
  /** Applies the retention policy now; returns how many messages were removed. */
  applyRetention(policy: RetentionPolicy, nowUs: number): Promise<number>;
  stats(): Promise<StoreStats>;
  close(): Promise<void>;
}

import { ErrorCode, SwitchyardError } from '../core/errors.ts';

/**
 * Asterisk Manager Interface codec (docs/reference/ami.md). Pure, no I/O.
 *
 * The wire, as Asterisk 20 writes it (research/asterisk-20-observed/ami-idle-login.txt): one
 * banner line `Asterisk Call Manager/9.0.0` CRLF, then messages made of `Key: Value` CRLF lines,
 * each message ended by an empty line. The first key says what it is (`Response` or `Event`);
 * keys repeat (`Output` of a Command, `ChanVariable`), so a message is a list, not a map.
 *
 * The incremental parser takes chunks as they come off the socket and never throws on what the
 * peer sends: a malformed or oversized frame is reported as `dropped` and the parser
 * resynchronises at the next empty line. Its output does not depend on how the stream is cut
 * into chunks. Memory is bounded by `maxFrameBytes` whatever the peer does.
 *
 * Asterisk 20 answers `Action: Command` with `Response: Success` (or `Error`), `Message: Command
 * output follows` and one `Output:` line per line of CLI output, which is plain `Key: Value`
 * framing. Asterisk 13 and older sent `Response: Follows` followed by raw text and `--END
 * COMMAND--`; no transcript shows it and the raw lines have no `Key:`, so such a frame is
 * dropped as malformed rather than half-parsed.
 */

export type AmiField = readonly [key: string, value: string];

export interface AmiMessage {
  /** In wire order, keys as sent, values without the one space after the colon. */
  readonly fields: readonly AmiField[];
}

export interface AmiBanner {
  /** The whole first line, without its line end. */
  text: string;
  /** `9.0.0` when the line is `Asterisk Call Manager/<version>`; undefined for anything else. */
  version: string | undefined;
}

export type AmiDropReason = 'oversized' | 'too-many-lines' | 'malformed-line' | 'banner-too-long';

export type AmiParseItem =
  | { type: 'banner'; banner: AmiBanner }
  | { type: 'message'; message: AmiMessage }
  /**
   * A frame that was thrown away. `bytes` counts it whole, through its closing empty line;
   * `sample` is its first bytes with control characters escaped, for a log line.
   */
  | { type: 'dropped'; reason: AmiDropReason; bytes: number; sample: string };

export interface AmiParserOptions {
  /** The peer starts with a banner line (Asterisk does; a client sending actions does not). Default true. */
  expectBanner?: boolean;
  /** Largest frame, every line and line end counted, closing empty line included. Default 64 KiB. */
  maxFrameBytes?: number;
  /** Most `Key: Value` lines in one frame. Default 2048. */
  maxLines?: number;
}

export interface AmiParserStats {
  messages: number;
  dropped: number;
  /** Bytes of dropped frames. */
  droppedBytes: number;
}

export interface AmiParser {
  /** Parses what `chunk` completes; keeps the unfinished rest (at most maxFrameBytes) for the next call. */
  feed(chunk: Uint8Array | string): AmiParseItem[];
  /** Bytes held for an unfinished line, for tests and diagnostics. */
  pendingBytes(): number;
  stats(): AmiParserStats;
}

export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024;
export const DEFAULT_MAX_LINES = 2048;
/** Asterisk's banner is 27 bytes; a first line this long is not a banner. */
const MAX_BANNER_BYTES = 1024;
const SAMPLE_BYTES = 64;
const LF = 0x0a;
const CR = 0x0d;

/**
 * A key is printable ASCII without space or colon (Asterisk's own keys are letters, digits and
 * `-`, plus `ChanVariable(...)`-style suffixes in older versions). Binary noise fails this, which
 * is what lets the parser tell garbage from a message.
 */
const FIELD_LINE = /^([\x21-\x39\x3b-\x7e]{1,128}):(.*)$/s;
const BANNER_PATTERN = /^Asterisk Call Manager\/([0-9][0-9A-Za-z.-]{0,31})$/;

const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

function isOnlyCr(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== CR) return false;
  return true;
}

/**
 * Bytes as log-safe text, as in a dropped frame's `sample`: printable ASCII kept, backslash
 * doubled, CR LF as \r \n, everything else as \xNN.
 */
export function escapeSample(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    if (b === CR) out += '\\r';
    else if (b === LF) out += '\\n';
    else if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) {
    throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `ami parser: ${name} must be a positive integer`);
  }
  return value;
}

/**
 * An incremental parser for one connection (or one direction of it).
 *
 * @example
 *   const parser = createAmiParser();
 *   socket.on('data', (chunk) => {
 *     for (const item of parser.feed(chunk)) if (item.type === 'message') handle(item.message);
 *   });
 */
export function createAmiParser(opts: AmiParserOptions = {}): AmiParser {
  const maxFrameBytes = positiveInteger('maxFrameBytes', opts.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES);
  const maxLines = positiveInteger('maxLines', opts.maxLines, DEFAULT_MAX_LINES);
  let inBanner = opts.expectBanner ?? true;
  const counters: AmiParserStats = { messages: 0, dropped: 0, droppedBytes: 0 };

  // The frame being read. Everything below is reset when a frame ends (emitted or dropped).
  let frameBytes = 0;
  let fields: AmiField[] = [];
  /** Set once the frame is known to be bad: its bytes are skipped up to the next empty line. */
  let discard: AmiDropReason | undefined;
  const sample = new Uint8Array(SAMPLE_BYTES);
  let sampleLength = 0;
  // The line being read: its bytes so far (not kept while discarding) and whether they are all CR.
  let lineParts: Uint8Array[] = [];
  let lineOnlyCr = true;

  const bannerLimit = Math.min(MAX_BANNER_BYTES, maxFrameBytes);
  const limit = (): number => (inBanner ? bannerLimit : maxFrameBytes);

  function addSample(bytes: Uint8Array): void {
    if (sampleLength >= SAMPLE_BYTES) return;
    const take = bytes.subarray(0, SAMPLE_BYTES - sampleLength);
    sample.set(take, sampleLength);
    sampleLength += take.length;
  }

  function startDiscard(reason: AmiDropReason): void {
    discard = reason;
    lineParts = [];
  }

  function resetFrame(): void {
    frameBytes = 0;
    fields = [];
    discard = undefined;
    // Reused: a dropped item's sample is turned into a string before the next frame starts.
    sampleLength = 0;
  }

  function resetLine(): void {
    lineParts = [];
    lineOnlyCr = true;
  }

  function dropped(reason: AmiDropReason): AmiParseItem {
    counters.dropped++;
    counters.droppedBytes += frameBytes;
    return {
      type: 'dropped',
      reason,
      bytes: frameBytes,
      sample: escapeSample(sample.subarray(0, sampleLength)),
    };
  }

  /** Bytes of a line before its LF (possibly only part of it). */
  function takePiece(piece: Uint8Array): void {
    if (piece.length === 0) return;
    frameBytes += piece.length;
    addSample(piece);
    if (lineOnlyCr && !isOnlyCr(piece)) lineOnlyCr = false;
    if (discard !== undefined) return;
    // The LF still to come makes it one byte more: a frame already at the limit cannot fit. The
    // same test runs at the LF, so the outcome does not depend on where the chunks were cut.
    if (frameBytes + 1 > limit()) startDiscard(inBanner ? 'banner-too-long' : 'oversized');
    else lineParts.push(piece);
  }

  /** The LF that ends the current line. */
  function takeLineEnd(out: AmiParseItem[]): void {
    frameBytes += 1;
    addSample(Uint8Array.of(LF));
    if (discard === undefined && frameBytes > limit())
      startDiscard(inBanner ? 'banner-too-long' : 'oversized');
    const blank = lineOnlyCr;
    const parts = lineParts;
    resetLine();

    if (inBanner) {
      // The banner is a single line, not a frame: it needs no empty line after it.
      inBanner = false;
      if (discard !== undefined) out.push(dropped(discard));
      else {
        const text = decoder.decode(stripTrailingCr(concat(parts)));
        out.push({ type: 'banner', banner: { text, version: BANNER_PATTERN.exec(text)?.[1] } });
      }
      resetFrame();
      return;
    }
    if (blank) {
      if (discard !== undefined) out.push(dropped(discard));
      else if (fields.length > 0) {
        counters.messages++;
        out.push({ type: 'message', message: { fields } });
      }
      // An empty line with no frame before it (a stray CRLF) is not a frame: nothing to report.
      resetFrame();
      return;
    }
    if (discard !== undefined) return;
    if (fields.length >= maxLines) {
      startDiscard('too-many-lines');
      return;
    }
    const match = FIELD_LINE.exec(decoder.decode(stripTrailingCr(concat(parts))));
    if (!match) {
      startDiscard('malformed-line');
      return;
    }
    const raw = match[2]!;
    // Asterisk writes `Key: Value`; only that one space is framing. Values may start with more
    // spaces of their own (RTPAUDIOQOSLOSS in stop-now/ami-monitor.txt does).
    fields.push([match[1]!, raw.startsWith(' ') ? raw.slice(1) : raw]);
  }

  return {
    feed(chunk) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      const out: AmiParseItem[] = [];
      let pos = 0;
      while (pos < bytes.length) {
        const lf = bytes.indexOf(LF, pos);
        takePiece(bytes.subarray(pos, lf === -1 ? bytes.length : lf));
        if (lf === -1) break;
        takeLineEnd(out);
        pos = lf + 1;
      }
      // Keep a copy of the unfinished line: the caller may reuse its buffer. (new Uint8Array
      // copies; Buffer#slice would not.)
      if (lineParts.length > 0) lineParts = [new Uint8Array(concat(lineParts))];
      return out;
    },
    pendingBytes: () => lineParts.reduce((n, p) => n + p.length, 0),
    stats: () => ({ ...counters }),
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  return Buffer.concat(parts);
}

function stripTrailingCr(bytes: Uint8Array): Uint8Array {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === CR) end--;
  return bytes.subarray(0, end);
}

/** The first value of `key` (any case), or undefined. */
export function getField(msg: AmiMessage, key: string): string | undefined {
  const lower = key.toLowerCase();
  for (const [k, v] of msg.fields) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/** Every value of `key` (any case), in wire order: `Output` lines, `ChanVariable`s... */
export function getFields(msg: AmiMessage, key: string): string[] {
  const lower = key.toLowerCase();
  return msg.fields.filter(([k]) => k.toLowerCase() === lower).map(([, v]) => v);
}

/**
 * What a message is, from its first key: Asterisk always writes `Response` or `Event` first (and
 * a client `Action`). Anything else is well-framed but not AMI.
 */
export function messageKind(msg: AmiMessage): 'response' | 'event' | 'action' | 'unknown' {
  const first = msg.fields[0]?.[0].toLowerCase();
  if (first === 'response') return 'response';
  if (first === 'event') return 'event';
  if (first === 'action') return 'action';
  return 'unknown';
}

/** Fields of an action besides `Action` and `ActionID`: a record (arrays repeat the key) or pairs. */
export type AmiActionFields =
  | Readonly<Record<string, string | number | readonly (string | number)[]>>
  | readonly (readonly [string, string | number])[];

const ACTION_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const ACTION_KEY = /^[\x21-\x39\x3b-\x7e]{1,128}$/;
/** A CR or LF would end the line (or the action) early and smuggle in keys or whole actions. */
const UNSAFE_VALUE = /[\r\n\0]/;
const RESERVED_KEYS = new Set(['action', 'actionid']);
/**
 * Asterisk's manager.c reads each line into a 1025-byte buffer and throws longer lines away
 * ("Dumping long line"), which would silently lose a field: refuse them here instead.
 */
const MAX_LINE_BYTES = 1024;

/** Values are never quoted in the message: one of them may be the Login secret. */
function invalidAction(what: string, shown?: string): never {
  throw new SwitchyardError(
    ErrorCode.INVALID_ARGUMENT,
    `ami action: invalid ${what}${shown === undefined ? '' : ` ${JSON.stringify(shown.slice(0, 80))}`}`,
  );
}

function fieldPairs(fields: AmiActionFields | undefined): Array<[string, string]> {
  if (fields === undefined) return [];
  const pairs: Array<[string, string]> = [];
  const entries: ReadonlyArray<readonly [string, unknown]> = Array.isArray(fields)
    ? (fields as readonly (readonly [string, unknown])[])
    : Object.entries(fields);
  for (const [key, value] of entries) {
    const values = Array.isArray(value) ? (value as unknown[]) : [value];
    for (const v of values) {
      if (typeof v === 'number' && Number.isFinite(v)) pairs.push([key, String(v)]);
      else if (typeof v === 'string') pairs.push([key, v]);
      else invalidAction(`value of ${key} (want a string or a finite number)`);
    }
  }
  return pairs;
}

/**
 * An action as wire text: `Action: <name>\r\nActionID: <id>\r\n<Key>: <Value>\r\n...\r\n\r\n`.
 * Every name, key and value is checked first: a CR, LF or NUL anywhere, a key that is not a plain
 * token, or `Action`/`ActionID` among the fields throws SY_ERR_INVALID_ARGUMENT (a programmer
 * error) and nothing is produced.
 */
export function serializeAction(name: string, actionId: string, fields?: AmiActionFields): string {
  if (typeof name !== 'string' || !ACTION_NAME.test(name)) invalidAction('name', String(name));
  if (typeof actionId !== 'string' || !ACTION_KEY.test(actionId)) invalidAction('ActionID', String(actionId));
  let text = `Action: ${name}\r\nActionID: ${actionId}\r\n`;
  for (const [key, value] of fieldPairs(fields)) {
    if (typeof key !== 'string' || !ACTION_KEY.test(key)) invalidAction('key', String(key));
    if (RESERVED_KEYS.has(key.toLowerCase())) invalidAction('key (set by the client)', key);
    if (UNSAFE_VALUE.test(value)) invalidAction(`value of ${key} (contains CR, LF or NUL)`);
    const line = `${key}: ${value}`;
    if (Buffer.byteLength(line) > MAX_LINE_BYTES)
      invalidAction(`value of ${key} (line over ${MAX_LINE_BYTES} bytes)`);
    text += `${line}\r\n`;
  }
  return `${text}\r\n`;
}

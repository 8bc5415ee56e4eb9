import { ErrorCode, SwitchyardError } from '../core/errors.ts';
import { HEP_HEADER_BYTES, HEP_MAX_BYTES } from './hep.ts';

/**
 * HEP3 over TCP (or TLS): cuts the byte stream into whole HEP packets using the 6-byte header,
 * `"HEP3"` + u16 total length, as heplify-server and Homer do. Pure, no I/O; one framer per
 * connection.
 *
 * A stream has no resynchronisation point (`HEP3` can occur inside a payload), so the first bytes
 * that are not a HEP header (wrong magic, a length below 6 or above `maxFrameBytes`) stop the
 * framer for good: it reports the error once and the caller closes the connection. Frames are not
 * decoded here; a frame whose chunks are bad is still a frame, and {@link decodeHep} drops it
 * without losing the connection.
 *
 * Memory is bounded: at most one unfinished frame (under `maxFrameBytes`) is held, grown as its
 * bytes arrive rather than allocated from the length the peer claims. {@link HepStreamFramer.pendingBytes}
 * lets the server time out a peer that sends half a frame and stalls.
 */

export type HepStreamErrorReason =
  /** The bytes where a header should start are not `HEP3` (reported as soon as one byte differs). */
  | 'bad-magic'
  /** The total length field is below the 6-byte header. */
  | 'bad-length'
  /** The total length field exceeds `maxFrameBytes`. */
  | 'too-large';

export interface HepStreamError {
  reason: HepStreamErrorReason;
  /** For a log line: what was found, with up to 8 bytes in hex. */
  detail: string;
}

export interface HepFeedResult {
  /**
   * Whole packets, in stream order. A frame that lies within one chunk is a view into that chunk
   * (no copy; Node's socket chunks are never reused, so this is safe with `socket.on('data')`);
   * one assembled from several chunks is a fresh buffer.
   */
  frames: Uint8Array[];
  /** Set when the stream is not HEP3: close the connection. Frames before the bad bytes are still returned. */
  error: HepStreamError | undefined;
}

export interface HepStreamFramerOptions {
  /** Largest frame accepted, header included: 6..65535, default 65535. */
  maxFrameBytes?: number;
}

export interface HepStreamFramer {
  /** Frames that `chunk` completes. After an error every call returns no frames and the same error. */
  feed(chunk: Uint8Array): HepFeedResult;
  /** Bytes held for an unfinished frame (0 between frames). */
  pendingBytes(): number;
  /** The error that stopped the framer, if any. */
  error(): HepStreamError | undefined;
}

const MAGIC = [0x48, 0x45, 0x50, 0x33] as const;
const EMPTY = new Uint8Array(0);
/** First allocation for a frame split across chunks; doubled as bytes arrive, capped at its length. */
const MIN_ACCUMULATOR_BYTES = 512;

function hex(b: Uint8Array, at: number): string {
  return Buffer.from(b.buffer, b.byteOffset + at, Math.min(8, b.length - at)).toString('hex');
}

/**
 * A framer for one connection.
 *
 * @example
 *   const framer = createHepStreamFramer();
 *   socket.on('data', (chunk) => {
 *     const { frames, error } = framer.feed(chunk);
 *     for (const f of frames) handle(decodeHep(f));
 *     if (error) socket.destroy();
 *   });
 */
export function createHepStreamFramer(opts: HepStreamFramerOptions = {}): HepStreamFramer {
  const maxFrameBytes = opts.maxFrameBytes ?? HEP_MAX_BYTES;
  if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < HEP_HEADER_BYTES || maxFrameBytes > HEP_MAX_BYTES) {
    throw new SwitchyardError(
      ErrorCode.INVALID_ARGUMENT,
      `hep stream: maxFrameBytes must be an integer in ${HEP_HEADER_BYTES}..${HEP_MAX_BYTES}`,
    );
  }
  let failure: HepStreamError | undefined;
  /** The unfinished frame: its first `accLen` bytes (header included) in `acc`. */
  let acc: Uint8Array = EMPTY;
  let accLen = 0;
  /** Its total length once the header is complete, else 0. */
  let expected = 0;

  /** Checks header bytes [from, to) of a frame whose bytes start at b[at]; sets `failure`. */
  function checkHeader(b: Uint8Array, at: number, from: number, to: number): boolean {
    for (let k = from; k < Math.min(to, MAGIC.length); k++) {
      if (b[at + k] !== MAGIC[k]) {
        failure = { reason: 'bad-magic', detail: `not a HEP3 header: ${hex(b, at)}` };
        return false;
      }
    }
    if (to < HEP_HEADER_BYTES) return true;
    const len = (b[at + 4]! << 8) | b[at + 5]!;
    if (len < HEP_HEADER_BYTES) failure = { reason: 'bad-length', detail: `frame length ${len}` };
    else if (len > maxFrameBytes)
      failure = { reason: 'too-large', detail: `frame length ${len} > ${maxFrameBytes}` };
    return failure === undefined;
  }

  function append(bytes: Uint8Array): void {
    const needed = accLen + bytes.length;
    if (needed > acc.length) {
      const limit = expected > 0 ? expected : HEP_HEADER_BYTES;
      const next = new Uint8Array(
        Math.max(needed, Math.min(Math.max(acc.length * 2, MIN_ACCUMULATOR_BYTES), limit)),
      );
      next.set(acc.subarray(0, accLen));
      acc = next;
    }
    acc.set(bytes, accLen);
    accLen = needed;
  }

  function takeAccumulated(): Uint8Array {
    const frame = acc.length === accLen ? acc : acc.slice(0, accLen);
    acc = EMPTY;
    accLen = 0;
    expected = 0;
    return frame;
  }

  function feed(chunk: Uint8Array): HepFeedResult {
    const frames: Uint8Array[] = [];
    if (failure !== undefined) return { frames, error: failure };
    let i = 0;
    while (i < chunk.length) {
      if (accLen === 0) {
        // Fast path: frames wholly inside this chunk are returned as views.
        const avail = chunk.length - i;
        if (!checkHeader(chunk, i, 0, Math.min(avail, HEP_HEADER_BYTES))) break;
        if (avail >= HEP_HEADER_BYTES) {
          const len = (chunk[i + 4]! << 8) | chunk[i + 5]!;
          if (avail >= len) {
            frames.push(chunk.subarray(i, i + len));
            i += len;
            continue;
          }
        }
      }
      if (accLen < HEP_HEADER_BYTES) {
        const take = Math.min(HEP_HEADER_BYTES - accLen, chunk.length - i);
        append(chunk.subarray(i, i + take));
        i += take;
        if (accLen < HEP_HEADER_BYTES) {
          if (!checkHeader(acc, 0, 0, accLen)) break;
          continue;
        }
        if (!checkHeader(acc, 0, 0, HEP_HEADER_BYTES)) break;
        expected = (acc[4]! << 8) | acc[5]!;
      } else {
        const take = Math.min(expected - accLen, chunk.length - i);
        append(chunk.subarray(i, i + take));
        i += take;
      }
      if (accLen === expected) frames.push(takeAccumulated());
    }
    if (failure !== undefined) {
      acc = EMPTY;
      accLen = 0;
    }
    return { frames, error: failure };
  }

  return {
    feed,
    pendingBytes: () => accLen,
    error: () => failure,
  };
}

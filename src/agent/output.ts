/**
 * Bounded handling of a child's stdout/stderr: a child that prints without end, or one endless
 * line, must not grow the agent's memory or its log lines without limit.
 */

/** Keeps the last `maxBytes` bytes written; older output is dropped. */
export interface OutputTail {
  push(chunk: Buffer): void;
  /** The kept bytes as text, starting at a whole character. */
  text(): string;
  /** Whether anything was dropped. */
  readonly truncated: boolean;
}

export function createOutputTail(maxBytes: number): OutputTail {
  let chunks: Buffer[] = [];
  let size = 0;
  let truncated = false;
  const compact = () => {
    const all = Buffer.concat(chunks);
    const kept = all.subarray(Math.max(0, all.length - maxBytes));
    chunks = [kept];
    size = kept.length;
  };
  return {
    push(chunk) {
      chunks.push(chunk);
      size += chunk.length;
      if (size > maxBytes) {
        truncated = true;
        // Compacting on every chunk would copy the tail each time; twice the bound amortises it.
        if (size > 2 * maxBytes) compact();
      }
    },
    text() {
      if (size > maxBytes) compact();
      const bytes = Buffer.concat(chunks);
      // The cut may land inside a multi-byte character: skip UTF-8 continuation bytes.
      let start = 0;
      if (truncated) while (start < bytes.length && ((bytes[start] ?? 0) & 0xc0) === 0x80) start++;
      return bytes.subarray(start).toString('utf8');
    },
    get truncated() {
      return truncated;
    },
  };
}

/** Splits a text stream into lines, each cut at `maxLineChars` (the rest of it dropped, marked). */
export interface LineSplitter {
  push(text: string): void;
  /** Emits a last line that had no newline. */
  end(): void;
}

export const TRUNCATED_MARK = ' [truncated]';

export function createLineSplitter(maxLineChars: number, onLine: (line: string) => void): LineSplitter {
  let partial = '';
  // After a cut, the rest of that line is discarded up to its newline.
  let discarding = false;
  const emit = (line: string) => onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
  return {
    push(text) {
      let rest = text;
      for (;;) {
        const nl = rest.indexOf('\n');
        const piece = nl < 0 ? rest : rest.slice(0, nl);
        if (!discarding) {
          partial += piece;
          if (partial.length > maxLineChars) {
            emit(partial.slice(0, maxLineChars) + TRUNCATED_MARK);
            partial = '';
            discarding = nl < 0;
          } else if (nl >= 0) {
            emit(partial);
            partial = '';
          }
        } else if (nl >= 0) {
          discarding = false;
        }
        if (nl < 0) return;
        rest = rest.slice(nl + 1);
      }
    },
    end() {
      if (partial !== '') emit(partial);
      partial = '';
      discarding = false;
    },
  };
}

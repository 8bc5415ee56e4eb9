import { fail, ok, type Result } from '../core/result.ts';

/**
 * Reads the statistics SIPp 3.6 writes with `-trace_stat -stf FILE -fd SECONDS`: one header
 * line naming the columns, then one line per period, fields separated by ';' (dates inside a
 * field use tabs, never ';'), every line ending in ';'. Cumulative counters end in "(C)",
 * per-period ones in "(P)"; CurrentCall has neither. Columns are found by name, because their
 * positions moved between SIPp versions.
 *
 * It is data from another program: a line that does not decode is a Result failure, counted by
 * the caller, never an exception.
 */

/** The counters the demo call generator reports (cumulative since SIPp started). */
export interface SippCallCounters {
  /** Calls SIPp placed: OutgoingCall(C), or TotalCallCreated when that column is missing. */
  created: number;
  /** Calls in progress: CurrentCall. */
  current: number;
  /** SuccessfulCall(C). */
  successful: number;
  /** FailedCall(C). */
  failed: number;
}

/** Positions (0-based) of the columns we read, taken from the header line. */
export interface SippStatColumns {
  created: number;
  current: number;
  successful: number;
  failed: number;
}

/** A line longer than this is not SIPp's (its lines are about 1 KiB): dropped unread. */
export const MAX_STAT_LINE_CHARS = 16 * 1024;

/** Decodes the header line into column positions. */
export function parseSippStatHeader(line: string): Result<SippStatColumns> {
  if (line.length > MAX_STAT_LINE_CHARS) return fail('line too long');
  const names = line.trim().split(';');
  const find = (name: string) => names.indexOf(name);
  const outgoing = find('OutgoingCall(C)');
  const created = outgoing === -1 ? find('TotalCallCreated') : outgoing;
  const current = find('CurrentCall');
  const successful = find('SuccessfulCall(C)');
  const failed = find('FailedCall(C)');
  const missing = [
    created === -1 ? 'OutgoingCall(C)' : undefined,
    current === -1 ? 'CurrentCall' : undefined,
    successful === -1 ? 'SuccessfulCall(C)' : undefined,
    failed === -1 ? 'FailedCall(C)' : undefined,
  ].filter((name) => name !== undefined);
  if (missing.length > 0) return fail(`not a SIPp statistics header (missing ${missing.join(', ')})`);
  return ok({ created, current, successful, failed });
}

const COUNT = /^[0-9]{1,15}$/;

/** Decodes one data line with the columns of the header. */
export function parseSippStatLine(columns: SippStatColumns, line: string): Result<SippCallCounters> {
  if (line.length > MAX_STAT_LINE_CHARS) return fail('line too long');
  const fields = line.trim().split(';');
  const read = (at: number): number | undefined => {
    const text = fields[at];
    return text !== undefined && COUNT.test(text) ? Number(text) : undefined;
  };
  const created = read(columns.created);
  const current = read(columns.current);
  const successful = read(columns.successful);
  const failed = read(columns.failed);
  if (created === undefined || current === undefined || successful === undefined || failed === undefined)
    return fail('a counter is missing or not a non-negative integer');
  return ok({ created, current, successful, failed });
}

export interface SippStatReader {
  /**
   * Feeds text as it arrives (any chunking); returns the counters of every complete data line
   * in it, in order, and a reason for each line that did not decode.
   */
  push(text: string): { counters: SippCallCounters[]; rejected: string[] };
}

/**
 * A streaming reader: splits lines, takes the first line that decodes as a header (SIPp writes
 * it first; anything before it is rejected), then decodes data lines with it. A later header
 * line (SIPp restarted on the same file) replaces the columns. Bounded: a partial line longer
 * than MAX_STAT_LINE_CHARS is dropped.
 */
export function createSippStatReader(): SippStatReader {
  let columns: SippStatColumns | undefined;
  let partial = '';
  /** Inside a line that was too long: drop text up to the next newline. */
  let skipping = false;
  return {
    push(text) {
      const counters: SippCallCounters[] = [];
      const rejected: string[] = [];
      let rest = text;
      if (skipping) {
        // The end of an overlong line: dropped up to its newline.
        const newline = rest.indexOf('\n');
        if (newline === -1) return { counters, rejected };
        rest = rest.slice(newline + 1);
        skipping = false;
      }
      const lines = (partial + rest).split('\n');
      partial = lines.pop() ?? '';
      if (partial.length > MAX_STAT_LINE_CHARS) {
        partial = '';
        skipping = true;
        rejected.push('line too long');
      }
      for (const raw of lines) {
        const line = raw.replace(/\r$/, '');
        if (line.trim() === '') continue;
        const header = parseSippStatHeader(line);
        if (header.ok) {
          columns = header.value;
          continue;
        }
        if (columns === undefined) {
          rejected.push(`before the header: ${header.reason}`);
          continue;
        }
        const decoded = parseSippStatLine(columns, line);
        if (decoded.ok) counters.push(decoded.value);
        else rejected.push(decoded.reason);
      }
      return { counters, rejected };
    },
  };
}

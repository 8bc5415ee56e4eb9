import { type ConfigProblem, formatConfigProblems } from '../core/config/index.ts';
import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';

/** Exit codes of every command (docs/reference/cli.md). */
export const ExitCode = {
  ok: 0,
  /** Something failed while doing the work: registry unreachable, Kamailio down... */
  runtime: 1,
  /** The command line or the configuration is wrong: fix it and try again. */
  usage: 2,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A usage error: bad argument or option value. Exits 2. */
export function usageError(message: string, details?: unknown): SwitchyardError {
  return new SwitchyardError(ErrorCode.INVALID_ARGUMENT, message, { details });
}

/** Config problems (every one of them). Exits 2. */
export function configError(problems: ConfigProblem[]): SwitchyardError {
  return new SwitchyardError(ErrorCode.CONFIG_INVALID, formatConfigProblems(problems).trimEnd(), {
    details: problems,
  });
}

export function exitCodeFor(err: unknown): ExitCode {
  if (
    SwitchyardError.is(err) &&
    (err.code === ErrorCode.INVALID_ARGUMENT || err.code === ErrorCode.CONFIG_INVALID)
  ) {
    return ExitCode.usage;
  }
  return ExitCode.runtime;
}

// C0/C1 controls and DEL: registry keys and values are not ours to trust, and an escape sequence
// printed to an operator's terminal can rewrite what they see.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/g;

/** Makes text from the registry safe to print on a terminal. */
export function printable(text: string): string {
  return text.replace(CONTROL_CHARS, '?');
}

export function writeOut(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function writeErr(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function warn(text: string): void {
  writeErr(`warning: ${printable(text)}`);
}

export function writeJson(value: unknown): void {
  writeOut(JSON.stringify(value, null, 2));
}

/**
 * Reports a failed command: the message on stderr (config problems one per line, as they are),
 * and with --json also `{ ok: false, error }` on stdout so scripts can parse every outcome.
 */
export function reportError(err: unknown, json: boolean): ExitCode {
  const code = exitCodeFor(err);
  // Usage and config messages speak for themselves; runtime errors keep their code for searching.
  if (code === ExitCode.usage && SwitchyardError.is(err)) {
    const lines = err.message.split('\n');
    writeErr(
      err.code === ErrorCode.CONFIG_INVALID ? err.message : lines.map((l) => `error: ${l}`).join('\n'),
    );
  } else writeErr(`error: ${printable(describeError(err))}`);
  if (json) {
    const error: Record<string, unknown> = {
      code: SwitchyardError.is(err) ? err.code : 'SY_ERR_UNEXPECTED',
      message: err instanceof Error ? err.message : String(err),
    };
    if (SwitchyardError.is(err) && err.details !== undefined) error['details'] = err.details;
    writeJson({ ok: false, error });
  }
  return code;
}

/** A plain text table: a header row, columns padded to their widest cell. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map((r) => line(r.map(printable)))].join('\n');
}

/** `45s`, `12m`, `3h12m`, `2d4h`: how long ago an ISO time was, for humans. */
export function formatAge(iso: string | undefined, nowMs: number): string {
  if (iso === undefined) return '-';
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return '?';
  const s = Math.max(0, Math.floor((nowMs - then) / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
}

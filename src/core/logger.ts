import pino from 'pino';

export type Logger = pino.Logger;

export interface LoggerOptions {
  level?: string;
  /** Extra fields on every line, e.g. { role: 'dispatcher' }. */
  base?: Record<string, unknown>;
  /** Where lines go; defaults to stdout. Tests pass a stream to read lines back. */
  destination?: pino.DestinationStream;
}

/** Paths whose values never reach a log line. */
export const REDACTED_PATHS = [
  '*.password',
  '*.secret',
  '*.token',
  'password',
  'secret',
  'token',
  'authorization',
];

/** One root logger per process (or per role inside `up`); components take children. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: opts.base ?? {},
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** A logger that drops everything: for tests and benchmarks that do not read logs. */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}

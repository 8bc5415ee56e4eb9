import type { Logger } from '../core/logger.ts';

/**
 * Running SIPp as a UAC we own (the demo call generator, the lab's caller): its output into our
 * log, and a stop that lets calls finish. SIGUSR1 makes SIPp place no new calls and exit once
 * the calls in progress are done; after the grace, SIGTERM (calls up are abandoned), then SIGKILL
 * to its process group (it is started detached, so the group id is its pid).
 */

/** Longest output line passed on to the log; the rest of the line is dropped. */
const MAX_LOG_LINE_CHARS = 2000;
/** After SIGTERM, how long SIPp gets before SIGKILL. */
const TERM_TO_KILL_MS = 1000;

/** Calls `onLine` for each line of a child's output stream, bounded in length. */
export function forwardLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (stream === null) return;
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (text: string) => {
    const lines = (partial + text).split('\n');
    partial = (lines.pop() ?? '').slice(0, MAX_LOG_LINE_CHARS);
    for (const line of lines) if (line.trim() !== '') onLine(line.slice(0, MAX_LOG_LINE_CHARS));
  });
  stream.on('end', () => {
    if (partial.trim() !== '') onLine(partial);
  });
}

/** True when `promise` settles within `ms`. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const result = await Promise.race([promise.then(() => true as const), timeout]);
  clearTimeout(timer);
  return result;
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** The group id is SIPp's pid (detached), and it is still alive when we call this. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    signalPid(pid, signal);
  }
}

/**
 * Stops a SIPp UAC: SIGUSR1, then after `graceMs` SIGTERM, then SIGKILL. Resolves once it has
 * exited (`exited` settles).
 */
export async function stopSippUac(opts: {
  pid: number;
  exited: Promise<unknown>;
  alive: () => boolean;
  graceMs: number;
  log: Logger;
  /** Extra fields for the warning when calls were still up (e.g. the counts). */
  context?: () => Record<string, unknown>;
}): Promise<void> {
  const { pid, exited, alive, graceMs, log } = opts;
  if (alive()) {
    signalPid(pid, 'SIGUSR1');
    if (!(await settlesWithin(exited, graceMs)) && alive()) {
      log.warn({ pid, graceMs, ...opts.context?.() }, 'calls still up after the grace period: SIGTERM');
      signalPid(pid, 'SIGTERM');
      if (!(await settlesWithin(exited, TERM_TO_KILL_MS)) && alive()) {
        log.warn({ pid }, 'still running after SIGTERM: SIGKILL');
        signalGroup(pid, 'SIGKILL');
      }
    }
  }
  await exited;
}

/**
 * SIPp's options that keep it on the one address it is given: SIP (-i, -bind_local, and -p
 * when a port is given), media (-mi) and its control socket (-ci; 0.0.0.0:8888 otherwise).
 */
export function sippBindArgs(ip: string, port?: number): string[] {
  return ['-i', ip, ...(port === undefined ? [] : ['-p', String(port)]), '-bind_local', '-mi', ip, '-ci', ip];
}

export interface SippUacArgsOptions {
  scenarioFile: string;
  /** `ip:port` the calls go to. */
  target: string;
  localIp: string;
  /** Unset: SIPp picks a free port. */
  localPort?: number | undefined;
  ratePerSecond: number;
  maxConcurrent: number;
  callDurationMs: number;
}

/**
 * The options of a SIPp UAC placing calls (after the binary; each caller adds how it reports):
 * `ratePerSecond` new calls a second, at most `maxConcurrent` at once, each held `callDurationMs`,
 * without a terminal.
 */
export function sippUacArgs(o: SippUacArgsOptions): string[] {
  return [
    '-sf',
    o.scenarioFile,
    o.target,
    ...sippBindArgs(o.localIp, o.localPort),
    '-r',
    String(o.ratePerSecond),
    '-l',
    String(o.maxConcurrent),
    '-d',
    String(o.callDurationMs),
    '-nostdin',
  ];
}

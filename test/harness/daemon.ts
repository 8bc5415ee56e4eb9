import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, readFileSync, rmSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * Shared plumbing for the real-daemon harnesses (kamailio.ts, sipp.ts): spawn without a shell
 * so the pid is the daemon's own (research/real-components.md problem 12), log to a file, stop
 * by pid with SIGTERM then SIGKILL, and make sure nothing outlives the test process: tracked
 * daemons are SIGKILLed and registered temp dirs removed on exit, SIGINT, SIGTERM and SIGHUP.
 */

export interface Daemon {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The command, for messages. */
  readonly name: string;
  readonly logFile: string;
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Whether the process is still running. */
  running(): boolean;
}

export interface SpawnDaemonOptions {
  cwd: string;
  /** stdout and stderr go here (appended). */
  logFile: string;
  /**
   * Start in a process group of its own (setsid via spawn's `detached`), so the whole tree can be
   * SIGKILLed: Kamailio's children survive a SIGKILL of its main process otherwise.
   */
  group?: boolean;
}

const live = new Set<Daemon>();
/** Daemons started in a process group of their own. */
const groups = new WeakSet<Daemon>();
const tempDirs = new Set<string>();
let hooksInstalled = false;

function signalDaemon(d: Daemon, signal: NodeJS.Signals, wholeGroup: boolean): void {
  if (!d.running()) return;
  try {
    // The group id is our daemon's pid and it is still alive, so the group is still ours.
    process.kill(wholeGroup ? -d.pid : d.pid, signal);
  } catch {
    // gone in the meantime
  }
}

function cleanupSync(): void {
  for (const d of live) signalDaemon(d, 'SIGKILL', groups.has(d));
  live.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  cleanupSync();
  process.off(signal, onSignal);
  // Re-raise with the default action when nobody else handles it, so the exit status is right.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.once('exit', cleanupSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
}

/** Removes `dir` when the test process ends, unless released earlier with removeTempDir. */
export function registerTempDir(dir: string): void {
  installHooks();
  tempDirs.add(dir);
}

export function removeTempDir(dir: string): void {
  tempDirs.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

/** Spawns `command args` (no shell), tracked until it exits. Throws if it cannot be spawned. */
export async function spawnDaemon(
  command: string,
  args: string[],
  opts: SpawnDaemonOptions,
): Promise<Daemon> {
  installHooks();
  const fd = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, { cwd: opts.cwd, stdio: ['ignore', fd, fd], detached: opts.group ?? false });
  } finally {
    closeSync(fd);
  }
  const spawned = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', (err) => resolve(err));
  });
  if (spawned || child.pid === undefined) {
    throw new Error(`cannot start ${command}: ${spawned?.message ?? 'no pid'}`);
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null)
      resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const daemon: Daemon = {
    child,
    pid: child.pid,
    name: command,
    logFile: opts.logFile,
    exited,
    running: () => child.exitCode === null && child.signalCode === null,
  };
  if (opts.group) groups.add(daemon);
  live.add(daemon);
  void exited.then(() => live.delete(daemon));
  return daemon;
}

/**
 * Stops a daemon by its pid: `signal` (SIGTERM), then SIGKILL (to its whole group if it has
 * one) after `killAfterMs`. Resolves once it has exited.
 */
export async function stopDaemon(
  d: Daemon,
  opts: { signal?: NodeJS.Signals; killAfterMs?: number } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; killed: boolean }> {
  if (!d.running()) return { ...(await d.exited), killed: false };
  signalDaemon(d, opts.signal ?? 'SIGTERM', false);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), opts.killAfterMs ?? 5000);
  });
  const first = await Promise.race([d.exited, timedOut]);
  clearTimeout(timer);
  if (first !== 'timeout') return { ...first, killed: false };
  signalDaemon(d, 'SIGKILL', groups.has(d));
  return { ...(await d.exited), killed: true };
}

/** The last `lines` lines of a log file ('' when it does not exist). */
export function tailFile(path: string, lines = 40): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return '';
  }
  const all = text.trimEnd().split('\n');
  return all.slice(Math.max(0, all.length - lines)).join('\n');
}

/** Loopback only: the harnesses never bind or aim anywhere else. */
export function assertLoopback(ip: string): void {
  if (!/^127\.(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)$/.test(ip)) {
    throw new Error(`harness: ${ip} is not an IPv4 loopback address (127.0.0.0/8)`);
  }
}

/**
 * Throws a clear error unless every command is on PATH. Tests of real components fail, never
 * skip, when a component is missing: a skipped test cannot catch a breakage.
 */
export function requireBinaries(...commands: string[]): void {
  const dirs = (process.env['PATH'] ?? '').split(delimiter).filter(Boolean);
  const missing = commands.filter(
    (cmd) =>
      !dirs.some((dir) => {
        try {
          accessSync(join(dir, cmd), constants.X_OK);
          return true;
        } catch {
          return false;
        }
      }),
  );
  if (missing.length > 0)
    throw new Error(`not installed: ${missing.join(', ')} (bash .ci/run installs the Debian packages)`);
}

import { type ChildProcess, spawn } from 'node:child_process';
import { constants, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, SwitchyardError } from '../core/errors.ts';
import { findExecutable, parentDeathPrefix } from '../core/executables.ts';
import type { Logger } from '../core/logger.ts';
import { createSippStatReader, type SippCallCounters } from './demo-sipp-stats.ts';
import { forwardLines, signalGroup, sippBindArgs, sippUacArgs, stopSippUac } from './sipp-process.ts';

export {
  type CheckPrerequisitesOptions,
  checkPrerequisites,
  type InstallOptions,
  type InstallOutcome,
  installPrerequisites,
  manualInstallCommand,
  PREREQUISITE_PACKAGES,
  type Prerequisite,
  type PrerequisiteStatus,
} from './demo-prerequisites.ts';
export {
  createSippStatReader,
  parseSippStatHeader,
  parseSippStatLine,
  type SippCallCounters,
  type SippStatColumns,
} from './demo-sipp-stats.ts';

/**
 * The demo of `switchyard up` (docs/guides/demo.md): SIPp processes standing in for Asterisk
 * backends, and a SIPp call generator placing calls through the load balancer.
 *
 * Every SIPp binds only the address it is given (sippBindArgs: SIP, media and its control
 * socket, which binds 0.0.0.0:8888 otherwise). Without a terminal SIPp draws no screen
 * and, without -trace_* options, writes no files, so nothing lands in the working directory.
 */

/** deploy/demo/ of this package: two levels up from both src/up/ and dist/up/. */
export const DEMO_SCENARIO_DIR = fileURLToPath(new URL('../../deploy/demo/', import.meta.url));
export const DEMO_BACKEND_SCENARIO = 'demo-backend.xml';
export const DEMO_CALLER_SCENARIO = 'demo-caller.xml';

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** Becomes the X-Demo-Backend header value: no spaces, no line breaks. */
const BACKEND_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

function invalid(message: string): SwitchyardError {
  return new SwitchyardError(ErrorCode.INVALID_ARGUMENT, message);
}

function checkIp(what: string, ip: string): void {
  if (!IPV4.test(ip)) throw invalid(`${what}: an IPv4 address is required, got ${JSON.stringify(ip)}`);
}

function checkPort(what: string, port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(`${what}: bad port ${port}`);
}

export interface DemoBackendCommandOptions {
  sippBin: string;
  /** Shown in the X-Demo-Backend header of every reply: [A-Za-z0-9._-], at most 63 characters. */
  name: string;
  ip: string;
  port: number;
  /** Where demo-backend.xml is (default DEMO_SCENARIO_DIR). */
  scenarioDir?: string;
}

/**
 * The argv of one demo backend, for the agent to run in the foreground and supervise: SIPp as a
 * UAS that answers OPTIONS probes with 200 and takes calls (deploy/demo/demo-backend.xml). It
 * needs no terminal (-nostdin), and SIGTERM ends it in about a second.
 */
export function demoBackendCommand(opts: DemoBackendCommandOptions): string[] {
  checkIp('demo backend', opts.ip);
  checkPort('demo backend', opts.port);
  if (!BACKEND_NAME.test(opts.name)) throw invalid(`demo backend: bad name ${JSON.stringify(opts.name)}`);
  // No setpriv here: the agent that runs it gives it its parent-death signal.
  return [
    opts.sippBin,
    '-sf',
    join(opts.scenarioDir ?? DEMO_SCENARIO_DIR, DEMO_BACKEND_SCENARIO),
    '-key',
    'backend',
    opts.name,
    ...sippBindArgs(opts.ip, opts.port),
    '-nostdin',
  ];
}

/** The generator's counters; the same shape as GeneratorStatus in src/console/model.ts. */
export interface CallGeneratorStats {
  target: string;
  ratePerSecond: number;
  attempted: number;
  succeeded: number;
  failed: number;
  active: number;
}

export interface CallGeneratorOptions {
  sippBin: string;
  /** `ip:port` of the load balancer (or of one backend). */
  target: string;
  /** New calls per second; fractions are fine (0.5 = one call every 2 s). */
  ratePerSecond: number;
  /** How long each call stays up before the caller hangs up. */
  callDurationMs: number;
  /** At most this many calls at once (SIPp's -l); new calls wait while it is reached. */
  maxConcurrent: number;
  /** The caller's own address (SIP, media and control socket). */
  localIp: string;
  /** Default: a free port the system picks. */
  localPort?: number;
  logger: Logger;
  /** Where demo-caller.xml is (default DEMO_SCENARIO_DIR). */
  scenarioDir?: string;
  /** setpriv's path: SIPp then dies with this process even when it is SIGKILLed. */
  setprivBin?: string | undefined;
  /** mkfifo's path (default: looked up in the system directories). */
  mkfifoBin?: string;
  /** Parent of the temp dir for SIPp's files (default the OS temp dir). */
  tempRoot?: string;
  /** How long stop() lets calls in progress finish (default callDurationMs + 2000 ms). */
  stopGraceMs?: number;
  /** SIPp's statistics period, whole seconds (default 1, its minimum). */
  statsPeriodS?: number;
}

export interface CallGenerator {
  readonly pid: number;
  stats(): CallGeneratorStats;
  /** Called with fresh stats whenever a counter changes; returns the unsubscribe function. */
  onStats(listener: (stats: CallGeneratorStats) => void): () => void;
  /** False once SIPp has exited, whether stopped or on its own (it is never restarted). */
  running(): boolean;
  /** Settles when SIPp has exited and its temp dir is gone (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Stops placing calls and lets the calls in progress end (SIGUSR1: SIPp's graceful quit), then
   * SIGTERM after stopGraceMs, then SIGKILL to its process group after 1 s more. Removes the temp
   * dir. Idempotent; resolves once all that is done.
   */
  stop(): Promise<void>;
}

/** After SIPp exits, how long its last statistics line may still sit in the FIFO unread. */
const FINAL_READ_MS = 100;

function validateGenerator(opts: CallGeneratorOptions): void {
  const target = /^(.+):([0-9]{1,5})$/.exec(opts.target);
  if (!target) throw invalid(`call generator: target must be ip:port, got ${JSON.stringify(opts.target)}`);
  checkIp('call generator target', target[1]!);
  checkPort('call generator target', Number(target[2]));
  checkIp('call generator localIp', opts.localIp);
  if (opts.localPort !== undefined) checkPort('call generator localPort', opts.localPort);
  if (!(opts.ratePerSecond > 0 && opts.ratePerSecond <= 1000))
    throw invalid(`call generator: ratePerSecond must be in (0, 1000], got ${opts.ratePerSecond}`);
  if (!Number.isInteger(opts.callDurationMs) || opts.callDurationMs < 0 || opts.callDurationMs > 3_600_000)
    throw invalid(`call generator: callDurationMs must be an integer in [0, 3600000]`);
  if (!Number.isInteger(opts.maxConcurrent) || opts.maxConcurrent < 1 || opts.maxConcurrent > 10_000)
    throw invalid(`call generator: maxConcurrent must be an integer in [1, 10000]`);
  const period = opts.statsPeriodS ?? 1;
  if (!Number.isInteger(period) || period < 1 || period > 60)
    throw invalid('call generator: statsPeriodS must be an integer in [1, 60]');
}

/** Runs a program to completion (argv, no shell); resolves with its exit code or spawn error. */
function runOnce(program: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe'], shell: false });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      stderr = (stderr + text).slice(-500);
    });
    child.once('error', (err) => resolve(err.message));
    child.once('close', (code) => resolve(code === 0 ? undefined : `exit ${code}: ${stderr.trim()}`));
  });
}

/**
 * Starts SIPp as the demo caller (deploy/demo/demo-caller.xml) and follows its own statistics.
 * SIPp writes them (-trace_stat) to a FIFO in a temp dir, so they arrive live and nothing grows
 * on disk however long the demo runs. SIPp runs in a process group of its own and is never
 * restarted: when it exits, running() turns false and the exit is logged.
 */
export async function startCallGenerator(opts: CallGeneratorOptions): Promise<CallGenerator> {
  validateGenerator(opts);
  const log = opts.logger.child({ component: 'demo-caller' });
  const mkfifo = opts.mkfifoBin ?? findExecutable('mkfifo');
  if (mkfifo === undefined) throw invalid('call generator: mkfifo (coreutils) not found');
  const stopGraceMs = opts.stopGraceMs ?? opts.callDurationMs + 2000;

  const workDir = await mkdtemp(join(opts.tempRoot ?? tmpdir(), 'switchyard-demo-caller-'));
  const fifo = join(workDir, 'stats.fifo');
  let statsSocket: Socket | undefined;
  let child: ChildProcess;
  try {
    const mkfifoError = await runOnce(mkfifo, ['-m', '600', fifo]);
    if (mkfifoError !== undefined) throw invalid(`call generator: mkfifo failed: ${mkfifoError}`);
    // Read-write and non-blocking: the open does not wait for SIPp to open its end, and because
    // we hold a writer ourselves the reader never sees end-of-file between SIPp's writes.
    const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    statsSocket = new Socket({ fd, readable: true, writable: false });
    const argv = [
      ...parentDeathPrefix('SIGTERM', opts.setprivBin),
      opts.sippBin,
      ...sippUacArgs({
        ...opts,
        scenarioFile: join(opts.scenarioDir ?? DEMO_SCENARIO_DIR, DEMO_CALLER_SCENARIO),
      }),
      '-trace_stat',
      '-stf',
      fifo,
      '-fd',
      String(opts.statsPeriodS ?? 1),
    ];
    child = spawn(argv[0]!, argv.slice(1), {
      cwd: workDir,
      stdio: ['ignore', 'pipe', 'pipe'],
      // A group of its own: a Ctrl-C meant for `switchyard up` reaches SIPp only through stop().
      detached: true,
      shell: false,
    });
    const spawnError = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', resolve);
    });
    if (spawnError !== undefined || child.pid === undefined)
      throw invalid(`call generator: cannot start ${argv[0]}: ${spawnError?.message ?? 'no pid'}`);
  } catch (err) {
    statsSocket?.destroy();
    await rm(workDir, { recursive: true, force: true });
    throw err;
  }
  const pid = child.pid;

  let counters: SippCallCounters = { created: 0, current: 0, successful: 0, failed: 0 };
  let rejectedLines = 0;
  const listeners = new Set<(stats: CallGeneratorStats) => void>();
  const snapshot = (): CallGeneratorStats => ({
    target: opts.target,
    ratePerSecond: opts.ratePerSecond,
    attempted: counters.created,
    succeeded: counters.successful,
    failed: counters.failed,
    active: counters.current,
  });

  const reader = createSippStatReader();
  statsSocket.setEncoding('utf8');
  statsSocket.on('data', (text: string) => {
    const { counters: lines, rejected } = reader.push(text);
    for (const reason of rejected) {
      rejectedLines++;
      // The first one says something is off; the rest would only repeat it every second.
      if (rejectedLines === 1) log.warn({ reason }, 'SIPp statistics line not understood');
      else log.debug({ reason, rejectedLines }, 'SIPp statistics line not understood');
    }
    const last = lines.at(-1);
    if (last === undefined) return;
    const changed =
      last.created !== counters.created ||
      last.current !== counters.current ||
      last.successful !== counters.successful ||
      last.failed !== counters.failed;
    counters = last;
    if (!changed) return;
    const stats = snapshot();
    for (const listener of listeners) {
      try {
        listener(stats);
      } catch (err) {
        log.error({ err: String(err) }, 'call generator stats listener threw');
      }
    }
  });
  statsSocket.on('error', (err) => log.warn({ err: err.message }, 'SIPp statistics FIFO error'));

  // SIPp writes its final screen to stdout when it exits and its complaints to stderr.
  forwardLines(child.stdout, (line) => log.debug({ stream: 'stdout', pid }, line));
  forwardLines(child.stderr, (line) => log.info({ stream: 'stderr', pid }, line));

  let alive = true;
  let stopping = false;
  // If this process exits without stop() (an uncaught error), SIPp must not keep calling.
  const killOnExit = () => {
    if (alive) signalGroup(pid, 'SIGKILL');
  };
  process.once('exit', killOnExit);

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      alive = false;
      process.off('exit', killOnExit);
      if (stopping) log.info({ pid, code, signal, ...snapshot() }, 'demo call generator stopped');
      else log.warn({ pid, code, signal, ...snapshot() }, 'demo call generator exited on its own');
      // SIPp's last statistics line is in the FIFO already; give the reader a moment for it.
      setTimeout(() => {
        statsSocket.destroy();
        rm(workDir, { recursive: true, force: true })
          .catch((err: unknown) => log.warn({ err: String(err), workDir }, 'cannot remove temp dir'))
          .finally(() => resolve({ code, signal }));
      }, FINAL_READ_MS);
    });
  });

  log.info(
    {
      pid,
      target: opts.target,
      ratePerSecond: opts.ratePerSecond,
      callDurationMs: opts.callDurationMs,
      maxConcurrent: opts.maxConcurrent,
    },
    'demo call generator started',
  );

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      stopping = true;
      await stopSippUac({ pid, exited, alive: () => alive, graceMs: stopGraceMs, log });
    })();
    return stopped;
  };

  return {
    pid,
    stats: snapshot,
    onStats(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    running: () => alive,
    exited,
    stop,
  };
}

import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { redactUrlPasswords } from '../core/config/index.ts';
import { describeError, SwitchyardError } from '../core/errors.ts';
import { findExecutable, type RunAs, setprivWithPdeathsig, supervisionPrefix } from '../core/executables.ts';
import type { Logger } from '../core/logger.ts';
import { ABANDON_AFTER_KILL_MS } from './config.ts';
import { createLineSplitter } from './output.ts';
import { isRunning, killLeftoverGroup, signalChild } from './process-group.ts';
import {
  crashLoopReason,
  createBackoff,
  createCrashLoopDetector,
  stableAfterMs as defaultStableAfterMs,
  describeExit,
} from './restart-policy.ts';

/**
 * Runs one long-lived process (Asterisk in the foreground) and keeps it running: restarts it
 * with exponential back-off when it exits, gives up on a crash loop, and stops it for good with
 * SIGTERM then SIGKILL to its whole process group. It knows nothing of phases or probes: the
 * agent's state machine listens to its events and decides.
 */

export type SupervisorState =
  /** Created, start() not called yet. */
  | 'idle'
  /** spawn() called, the process not yet confirmed running. */
  | 'starting'
  | 'running'
  /** Exited (or being restarted); waiting out the back-off before the next start. */
  | 'backoff'
  /**
   * The process is gone and no restart is scheduled yet: briefly while the exit is reported,
   * and until restart() or stop() with `autoRestart: false`.
   */
  | 'exited'
  | 'stopping'
  /** stop() was called and the process is gone; final. */
  | 'stopped'
  /** Crash loop: no more automatic restarts until restart() is called. */
  | 'failed';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** From the process being confirmed running to its exit; 0 when it never started. */
  uptimeMs: number;
  /** The exit was asked for (stop() or restart()), not a crash. */
  expected: boolean;
  /** Why it could not be started (spawn error such as ENOENT). */
  error?: string;
}

export interface SupervisorEvents {
  started: { pid: number; restarts: number };
  exited: ExitInfo;
  'restart-scheduled': { delayMs: number; attempt: number; reason: string };
  'crash-loop': { reason: string };
}
export type SupervisorEvent = keyof SupervisorEvents;

/** Time and timers, injectable so that tests can drive them; a monotonic clock by default. */
export interface SupervisorClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const systemClock: SupervisorClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface RestartPolicy {
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** This many restarts within the window, and the next exit ends in `failed`. */
  crashLoopRestarts: number;
  crashLoopWindowMs: number;
}

export interface SupervisorOptions {
  /** Argv of the process; never run through a shell. */
  command: readonly string[];
  cwd?: string | undefined;
  /** Its environment; the agent's own when omitted. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  logger: Logger;
  restart: RestartPolicy;
  /**
   * Restart by itself after an exit it did not ask for (default true). False leaves the decision
   * to the owner: the state becomes `exited` until restart() (back-off and crash-loop rules
   * still apply) or stop().
   */
  autoRestart?: boolean | undefined;
  /** Default grace between SIGTERM and SIGKILL, for stop() and restart(). */
  stopGraceMs: number;
  /** Uptime after which the back-off starts over; default restart-policy's stableAfterMs(). */
  stableAfterMs?: number | undefined;
  /**
   * Signal the process gets from the kernel when this process dies, even by SIGKILL (Linux, with
   * util-linux's setpriv; nothing when it is missing). Without it the process, in a group of its
   * own, outlives a killed supervisor, and the next supervisor starts a second one that finds its
   * ports taken. Unset: none.
   */
  parentDeathSignal?: 'SIGTERM' | 'SIGKILL' | undefined;
  /**
   * Run the process as this user and group (through setpriv, which the agent then needs: root or
   * CAP_SETUID). Unlike Asterisk's own `-U`/`-G`, this keeps the parent-death signal.
   */
  runAs?: RunAs | undefined;
  /** Longer output lines are cut (the rest dropped) before they reach the log. */
  maxLineChars?: number | undefined;
  clock?: SupervisorClock | undefined;
}

export interface Supervisor {
  readonly state: SupervisorState;
  /** The running process's pid. */
  readonly pid: number | undefined;
  /** Restarts so far (automatic and requested). */
  readonly restarts: number;
  /** Why the supervisor gave up, in state `failed`. */
  readonly failure: string | undefined;
  /** Starts the process (once). Settles when it runs or failed to start (then retried as a crash). */
  start(): Promise<void>;
  /**
   * Stops the running process (SIGTERM, SIGKILL after `graceMs`) and starts it again after the
   * back-off; counts towards the crash loop. From `exited`, schedules the start (or declares the
   * crash loop). From `failed`, an operator's retry: the crash-loop history is forgotten and the
   * process starts at once. Returns false when there is nothing to do: already waiting to
   * restart, stopping or stopped.
   */
  restart(reason: string, opts?: { graceMs?: number }): boolean;
  /**
   * Final: no restart happens after it, whatever the state. SIGTERM to the process group, SIGKILL
   * after `graceMs` (default stopGraceMs); settles when the process is gone (undefined when none
   * was running).
   */
  stop(opts?: { graceMs?: number }): Promise<ExitInfo | undefined>;
  /** Sends a signal to the process (its whole group with `group: true`). False if none runs. */
  signal(signal: NodeJS.Signals, opts?: { group?: boolean }): boolean;
  /** Subscribes; returns the unsubscribe function. */
  on<E extends SupervisorEvent>(event: E, listener: (payload: SupervisorEvents[E]) => void): () => void;
}

/** Default cut of one output line. */
export const DEFAULT_MAX_LINE_CHARS = 4096;

/** setpriv in front of the command, for runAs and the parent-death signal; [] when neither applies. */
function wrapperPrefix(opts: SupervisorOptions, log: Logger): string[] {
  const withPdeathsig = opts.parentDeathSignal === undefined ? undefined : setprivWithPdeathsig();
  if (opts.parentDeathSignal !== undefined && withPdeathsig === undefined)
    log.warn(
      'setpriv with --pdeathsig (util-linux 2.33+) not found: if the agent is killed, the service outlives it',
    );
  const signal = withPdeathsig === undefined ? undefined : opts.parentDeathSignal;
  if (opts.runAs === undefined) return supervisionPrefix({ parentDeathSignal: signal }, withPdeathsig);
  const setpriv = withPdeathsig ?? findExecutable('setpriv');
  if (setpriv === undefined)
    throw new SwitchyardError(
      'SY_ERR_INVALID_ARGUMENT',
      'runAs needs util-linux setpriv, which is not installed',
    );
  return supervisionPrefix({ parentDeathSignal: signal, runAs: opts.runAs }, setpriv);
}

/** An absolute or relative path that is an executable file, or a bare name found on PATH. */
function resolvable(program: string, pathEnv: string | undefined, cwd: string | undefined): boolean {
  if (!program.includes('/')) return findExecutable(program, { pathEnv, systemDirs: [] }) !== undefined;
  const path = resolve(cwd ?? '.', program);
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export function createSupervisor(opts: SupervisorOptions): Supervisor {
  const name = opts.command[0];
  if (name === undefined || name === '')
    throw new SwitchyardError('SY_ERR_INVALID_ARGUMENT', 'supervisor: empty command');
  const clock = opts.clock ?? systemClock;
  const log = opts.logger.child({ proc: basename(name) });
  const prefix = wrapperPrefix(opts, log);
  const [program, ...args] = [...prefix, ...opts.command] as [string, ...string[]];
  const envPath = (opts.env ?? process.env)['PATH'];
  const backoff = createBackoff({
    initialMs: opts.restart.initialBackoffMs,
    maxMs: opts.restart.maxBackoffMs,
  });
  const loopOptions = {
    maxRestarts: opts.restart.crashLoopRestarts,
    windowMs: opts.restart.crashLoopWindowMs,
  };
  const crashLoop = createCrashLoopDetector(loopOptions);
  const stableMs = opts.stableAfterMs ?? defaultStableAfterMs(opts.restart.maxBackoffMs);
  const maxLineChars = opts.maxLineChars ?? DEFAULT_MAX_LINE_CHARS;
  const listeners = new Map<SupervisorEvent, Set<(payload: never) => void>>();

  let state: SupervisorState = 'idle';
  let child: ChildProcess | undefined;
  let runningSince: number | undefined;
  let restarts = 0;
  let failure: string | undefined;
  /** The current process is being stopped on purpose; its exit is not a crash. */
  let exitRequested = false;
  /** Why restart() was called, for the log of the restart it causes. */
  let restartReason: string | undefined;
  let lastExit: ExitInfo | undefined;
  const autoRestart = opts.autoRestart ?? true;
  let stopRequested = false;
  let restartTimer: unknown;
  let killTimer: unknown;
  let stopping: Promise<ExitInfo | undefined> | undefined;
  const exitWaiters: ((exit: ExitInfo) => void)[] = [];

  const emit = <E extends SupervisorEvent>(event: E, payload: SupervisorEvents[E]) => {
    for (const listener of listeners.get(event) ?? []) {
      try {
        (listener as (p: SupervisorEvents[E]) => void)(payload);
      } catch (err) {
        // A listener's bug must not break supervision.
        log.error({ event, err: describeError(err) }, 'supervisor listener threw');
      }
    }
  };

  const clearTimer = (handle: unknown) => {
    if (handle !== undefined) clock.clearTimeout(handle);
  };

  const pipeLines = (stream: NodeJS.ReadableStream | null, name: 'stdout' | 'stderr', pid: number) => {
    if (stream === null) return;
    const lines = createLineSplitter(maxLineChars, (line) => {
      if (line !== '') log.info({ stream: name, pid }, redactUrlPasswords(line));
    });
    stream.setEncoding('utf8');
    stream.on('data', (text: string) => lines.push(text));
    stream.on('end', () => lines.end());
  };

  /** The current process is gone (or never started): report it, then restart, stop or give up. */
  const onExit = (code: number | null, signal: NodeJS.Signals | null, error?: string) => {
    child = undefined;
    clearTimer(killTimer);
    killTimer = undefined;
    const uptimeMs = runningSince === undefined ? 0 : Math.round(clock.now() - runningSince);
    runningSince = undefined;
    const expected = exitRequested;
    exitRequested = false;
    const requestedBecause = restartReason;
    restartReason = undefined;
    const exit: ExitInfo = { code, signal, uptimeMs, expected, ...(error === undefined ? {} : { error }) };
    const level = expected ? 'info' : 'warn';
    log[level]({ code, signal, uptimeMs, ...(error === undefined ? {} : { error }) }, 'process exited');
    lastExit = exit;
    // A run that lasted counts as a success: the next crash starts the ladder again.
    if (uptimeMs >= stableMs) backoff.reset();
    // Listeners see the state after the exit, not the 'running' before it.
    state = stopRequested ? 'stopped' : 'exited';
    emit('exited', exit);
    for (const resolve of exitWaiters.splice(0)) resolve(exit);
    // A listener may have called stop() or restart() meanwhile: then that has decided.
    if (state !== 'exited' || (!expected && !autoRestart)) return;
    scheduleRestart(exit, requestedBecause ?? describeExit(exit));
  };

  /** Schedules the next start after the back-off; false when the crash loop says no. */
  const scheduleRestart = (exit: ExitInfo, reason: string): boolean => {
    if (!crashLoop.allows(clock.now())) {
      state = 'failed';
      failure = crashLoopReason(loopOptions, exit);
      log.error({ reason: failure }, 'crash loop: not restarting');
      emit('crash-loop', { reason: failure });
      return false;
    }
    const delayMs = backoff.next();
    state = 'backoff';
    log.info({ delayMs, attempt: backoff.attempts, reason }, 'restart scheduled');
    emit('restart-scheduled', { delayMs, attempt: backoff.attempts, reason });
    restartTimer = clock.setTimeout(() => {
      restartTimer = undefined;
      if (stopRequested) return;
      crashLoop.record(clock.now());
      restarts++;
      launch();
    }, delayMs);
    return true;
  };

  const launch = () => {
    state = 'starting';
    // Behind setpriv a missing program would look like a start and an exit 127 a moment later:
    // say what it is, like spawn's ENOENT without the wrapper.
    if (prefix.length > 0 && !resolvable(name, envPath, opts.cwd)) {
      onExit(null, null, `spawn ${name} ENOENT`);
      return;
    }
    let proc: ChildProcess;
    try {
      proc = spawn(program, args, {
        cwd: opts.cwd,
        env: opts.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        // Its own process group: stop() must reach what it started, too.
        detached: true,
        shell: false,
      });
    } catch (err) {
      // Synchronous spawn failures (bad argument types, NUL bytes): treated like a failed start.
      onExit(null, null, describeError(err));
      return;
    }
    child = proc;
    proc.once('spawn', () => {
      if (child !== proc) return;
      const pid = proc.pid ?? -1;
      runningSince = clock.now();
      if (state === 'starting') state = 'running';
      log.info({ pid, restarts }, 'process started');
      pipeLines(proc.stdout, 'stdout', pid);
      pipeLines(proc.stderr, 'stderr', pid);
      emit('started', { pid, restarts });
      // restart() came while the spawn was pending: carry it out now.
      if (exitRequested && killTimer === undefined) terminate(opts.stopGraceMs);
    });
    proc.once('error', (err) => {
      // Only a failure to spawn ends the run; other errors (a failed kill) are just logged.
      if (child !== proc) return;
      if (proc.pid === undefined || !isRunning(proc)) onExit(null, null, err.message);
      else log.warn({ err: err.message }, 'process error');
    });
    proc.once('exit', (code, signal) => {
      // What the process left behind in its group (Kamailio's children when its main process
      // is killed) would hold its ports and files against the restart: gone with it.
      if (proc.pid !== undefined && killLeftoverGroup(proc.pid))
        log.warn({ pid: proc.pid }, 'processes left in the exited process group: SIGKILL sent');
      if (child === proc) onExit(code, signal);
    });
  };

  /** SIGTERM to the group now, SIGKILL to it after `graceMs` (if it is still there). */
  const terminate = (graceMs: number) => {
    const proc = child;
    if (proc === undefined || proc.pid === undefined) return;
    if (!signalChild(proc, 'SIGTERM')) return;
    clearTimer(killTimer);
    killTimer = clock.setTimeout(() => {
      killTimer = undefined;
      if (child === proc && signalChild(proc, 'SIGKILL'))
        log.warn({ graceMs }, 'still running after SIGTERM: SIGKILL sent');
    }, graceMs);
  };

  const waitForExit = () => new Promise<ExitInfo>((resolve) => exitWaiters.push(resolve));

  const on = <E extends SupervisorEvent>(event: E, listener: (payload: SupervisorEvents[E]) => void) => {
    let set = listeners.get(event);
    if (set === undefined) {
      set = new Set();
      listeners.set(event, set);
    }
    const fn = listener as (payload: never) => void;
    set.add(fn);
    return () => {
      set.delete(fn);
    };
  };

  return {
    get state() {
      return state;
    },
    get pid() {
      return child?.pid;
    },
    get restarts() {
      return restarts;
    },
    get failure() {
      return failure;
    },

    async start() {
      if (stopRequested)
        throw new SwitchyardError('SY_ERR_CLOSED', 'supervisor: stopped, cannot start again');
      if (state !== 'idle')
        throw new SwitchyardError('SY_ERR_INVALID_ARGUMENT', `supervisor: already ${state}`);
      const settled = new Promise<void>((resolve) => {
        const offStarted = on('started', () => done());
        const offExited = on('exited', () => done());
        const done = () => {
          offStarted();
          offExited();
          resolve();
        };
      });
      launch();
      await settled;
    },

    restart(reason, restartOpts = {}) {
      if (stopRequested || state === 'backoff') return false;
      log.info({ reason, state }, 'restart requested');
      if (state === 'idle') {
        launch();
        return true;
      }
      if (state === 'exited') {
        return scheduleRestart(
          lastExit ?? { code: null, signal: null, uptimeMs: 0, expected: false },
          reason,
        );
      }
      if (state === 'failed') {
        // An operator's explicit retry: the crash loop that got us here is history.
        crashLoop.reset();
        backoff.reset();
        failure = undefined;
        restarts++;
        crashLoop.record(clock.now());
        launch();
        return true;
      }
      if (exitRequested) return false;
      exitRequested = true;
      restartReason = reason;
      // While 'starting', the 'spawn' handler terminates it as soon as there is a pid.
      if (state === 'running') terminate(restartOpts.graceMs ?? opts.stopGraceMs);
      return true;
    },

    stop(stopOpts = {}) {
      if (stopping !== undefined) return stopping;
      stopRequested = true;
      clearTimer(restartTimer);
      restartTimer = undefined;
      const proc = child;
      if (proc === undefined) {
        state = 'stopped';
        stopping = Promise.resolve(undefined);
        return stopping;
      }
      state = 'stopping';
      exitRequested = true;
      const graceMs = stopOpts.graceMs ?? opts.stopGraceMs;
      log.info({ pid: proc.pid, graceMs }, 'stopping');
      terminate(graceMs);
      stopping = new Promise<ExitInfo | undefined>((resolve) => {
        let abandon: unknown;
        void waitForExit().then((exit) => {
          clearTimer(abandon);
          resolve(exit);
        });
        // A process stuck in the kernel survives SIGKILL; the caller must not hang on it.
        abandon = clock.setTimeout(() => {
          if (child !== proc) return;
          log.error({ pid: proc.pid }, 'process did not exit after SIGKILL; giving up on it');
          child = undefined;
          state = 'stopped';
          resolve(undefined);
        }, graceMs + ABANDON_AFTER_KILL_MS);
      });
      return stopping;
    },

    signal(signal, signalOpts = {}) {
      const proc = child;
      if (proc === undefined) return false;
      return signalChild(proc, signal, signalOpts.group ?? false);
    },

    on,
  };
}

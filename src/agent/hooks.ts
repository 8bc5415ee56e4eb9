import { type ChildProcess, spawn } from 'node:child_process';
import { redactUrlPasswords } from '../core/config/index.ts';
import { describeError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { Counter, Histogram, type Registry as MetricsRegistry } from '../core/metrics.ts';
import type { HookConfig } from './config.ts';
import { createOutputTail } from './output.ts';
import type { Phase } from './phases.ts';
import { isRunning, signalChild } from './process-group.ts';

/**
 * Life-cycle hooks: operator commands run on entering a phase (whaleware's `/ww/usr/lifecycle
 * STATE`, research/seed-systems.md §5). Unlike whaleware's, a hook is an argv (no shell), has a
 * deadline after which its whole process group is killed, and can never stall the life-cycle.
 */

/** How much of each of stdout and stderr is kept for the log. */
export const DEFAULT_HOOK_TAIL_BYTES = 4096;
/** After SIGTERM at the deadline, SIGKILL follows this much later. */
export const DEFAULT_HOOK_KILL_GRACE_MS = 1000;
/**
 * After SIGKILL, or after the hook exits while something it started still holds its output
 * pipes, how long to wait before giving up on the process: a child stuck in the kernel
 * (uninterruptible sleep) survives even SIGKILL, and the caller must not wait for it.
 */
const ABANDON_AFTER_MS = 2000;
const PIPE_DRAIN_MS = 200;

/** What one run of a command came to. Never an exception: a hook failing is an outcome. */
export interface HookResult {
  /** It ran, exited 0 and was not killed. */
  ok: boolean;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** It was still running at its deadline and was killed. */
  timedOut: boolean;
  durationMs: number;
  /** Why it could not be started (`spawn nope ENOENT`), or that it could not be reaped. */
  error?: string;
  /** The last bytes of its output (DEFAULT_HOOK_TAIL_BYTES each), URL passwords hidden. */
  stdoutTail: string;
  stderrTail: string;
}

export type HookEnv = Readonly<Record<string, string | undefined>>;

export interface HookVars {
  phase: Phase;
  previousPhase?: Phase | undefined;
  nodeId?: string | undefined;
  sipUri?: string | undefined;
}

/**
 * The environment of a hook: `base` (the agent's own environment, handed down by the wiring)
 * plus what the hook is about. These variables always win over inherited ones of the same name.
 */
export function hookEnvironment(base: HookEnv, vars: HookVars): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  env['SWITCHYARD_PHASE'] = vars.phase;
  if (vars.previousPhase !== undefined) env['SWITCHYARD_PREVIOUS_PHASE'] = vars.previousPhase;
  else delete env['SWITCHYARD_PREVIOUS_PHASE'];
  if (vars.nodeId !== undefined) env['SWITCHYARD_NODE_ID'] = vars.nodeId;
  if (vars.sipUri !== undefined) env['SWITCHYARD_SIP_URI'] = vars.sipUri;
  return env;
}

export interface RunHookOptions extends HookVars {
  /** Argv; the first element is looked up on PATH. Never run through a shell. */
  command: readonly string[];
  timeoutMs: number;
  /** Base environment; the SWITCHYARD_* variables of `HookVars` are added to it. */
  env: HookEnv;
  logger: Logger;
  cwd?: string | undefined;
  /** Bytes kept of each output stream. */
  tailBytes?: number | undefined;
  /** Between SIGTERM and SIGKILL at the deadline. */
  killGraceMs?: number | undefined;
}

/** A command line for logs: argv joined, URL passwords hidden. */
function describeCommand(command: readonly string[]): string {
  return redactUrlPasswords(
    command.map((a) => (/[\s"'\\]/.test(a) || a === '' ? JSON.stringify(a) : a)).join(' '),
  );
}

/**
 * Runs one command to completion or to its deadline. Resolves, never rejects; a missing program
 * (ENOENT), a non-zero exit and a timeout are all reported in the result. The promise settles at
 * the latest about `timeoutMs + killGraceMs + 2 s` after the call, whatever the command does.
 */
export function runHook(opts: RunHookOptions): Promise<HookResult> {
  const started = performance.now();
  const tailBytes = opts.tailBytes ?? DEFAULT_HOOK_TAIL_BYTES;
  const stdout = createOutputTail(tailBytes);
  const stderr = createOutputTail(tailBytes);
  const log = opts.logger.child({ phase: opts.phase, hook: describeCommand(opts.command) });

  return new Promise<HookResult>((resolve) => {
    let settled = false;
    let timedOut = false;
    const timers: NodeJS.Timeout[] = [];
    let child: ChildProcess | undefined;

    const settle = (exitCode: number | null, signal: NodeJS.Signals | null, error?: string) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      // Whatever still holds the pipes (a backgrounded grandchild) must not keep us waiting.
      child?.stdout?.destroy();
      child?.stderr?.destroy();
      const result: HookResult = {
        ok: error === undefined && !timedOut && exitCode === 0,
        exitCode,
        signal,
        timedOut,
        durationMs: Math.round(performance.now() - started),
        ...(error === undefined ? {} : { error }),
        stdoutTail: redactUrlPasswords(stdout.text()),
        stderrTail: redactUrlPasswords(stderr.text()),
      };
      const fields = {
        exitCode,
        signal,
        timedOut,
        durationMs: result.durationMs,
        ...(error === undefined ? {} : { error }),
        stdout: result.stdoutTail,
        stderr: result.stderrTail,
      };
      if (result.ok) log.info(fields, 'hook finished');
      else log.warn(fields, timedOut ? 'hook timed out and was killed' : 'hook failed');
      resolve(result);
    };

    const [program, ...args] = opts.command;
    if (program === undefined || program === '') {
      settle(null, null, 'empty command');
      return;
    }
    try {
      child = spawn(program, args, {
        cwd: opts.cwd,
        env: hookEnvironment(opts.env, opts),
        stdio: ['ignore', 'pipe', 'pipe'],
        // A process group of its own, so that a timeout kills everything the hook started.
        detached: true,
        shell: false,
      });
    } catch (err) {
      // Synchronous failures: an argument with a NUL byte, a bad cwd type...
      settle(null, null, describeError(err));
      return;
    }
    const proc = child;
    log.debug({ pid: proc.pid }, 'hook started');
    proc.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    proc.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    // ENOENT, EACCES...: the process never ran. Asynchronous, after spawn() returned.
    proc.once('error', (err) => {
      // (Node then sets exitCode to the negative errno; that is no exit code, so report null.)
      if (proc.pid === undefined || !isRunning(proc)) settle(null, null, err.message);
    });
    // 'close' waits for the pipes to end too, so the tails are complete; but a grandchild that
    // inherited them may keep them open for ever, so 'exit' starts a short wait for them.
    proc.once('close', (code, signal) => settle(code, signal));
    proc.once('exit', (code, signal) => {
      timers.push(setTimeout(() => settle(code, signal), PIPE_DRAIN_MS));
    });

    timers.push(
      setTimeout(() => {
        if (!isRunning(proc)) return;
        timedOut = true;
        signalChild(proc, 'SIGTERM');
        const killGraceMs = opts.killGraceMs ?? DEFAULT_HOOK_KILL_GRACE_MS;
        timers.push(setTimeout(() => signalChild(proc, 'SIGKILL'), killGraceMs));
        timers.push(
          setTimeout(
            () => settle(null, null, `still running ${ABANDON_AFTER_MS} ms after SIGKILL; abandoned`),
            killGraceMs + ABANDON_AFTER_MS,
          ),
        );
      }, opts.timeoutMs),
    );
  });
}

export interface HookRunnerOptions {
  /** config.hooks: phase -> { command, timeoutMs }. */
  hooks: Readonly<Partial<Record<Phase, HookConfig>>>;
  /** The agent's environment, passed on to every hook. */
  env: HookEnv;
  nodeId: string;
  sipUri: string;
  logger: Logger;
  metrics?: MetricsRegistry | undefined;
  /** Hooks waiting beyond this are dropped (logged, counted): a bound on memory, not a feature. */
  maxQueued?: number | undefined;
}

export interface HookRunner {
  /**
   * Queues the hook of `phase`, if one is configured, behind those already queued: hooks run one
   * at a time, in the order of the transitions. Returns at once; the promise settles when this
   * hook has run (undefined when there is none, or it was dropped) and never rejects, so the
   * state machine need not await it.
   */
  run(phase: Phase, previousPhase?: Phase): Promise<HookResult | undefined>;
  /** Hooks queued or running. */
  pending(): number;
  /** Settles when everything queued so far has run. */
  idle(): Promise<void>;
  /** Refuses further hooks and waits for the queued ones (each bounded by its timeout). */
  close(): Promise<void>;
}

export const DEFAULT_MAX_QUEUED_HOOKS = 64;

function hookMetrics(registry: MetricsRegistry) {
  // One registry may outlive one runner (tests, an agent restarted inside `up`): reuse.
  const existing = <T>(name: string) => registry.getSingleMetric(name) as T | undefined;
  return {
    runs:
      existing<Counter<'phase' | 'result'>>('switchyard_agent_hooks_total') ??
      new Counter({
        name: 'switchyard_agent_hooks_total',
        help: 'Life-cycle hook runs by phase and result (ok, failed, timeout, error = could not start, dropped)',
        labelNames: ['phase', 'result'],
        registers: [registry],
      }),
    seconds:
      existing<Histogram<'phase'>>('switchyard_agent_hook_seconds') ??
      new Histogram({
        name: 'switchyard_agent_hook_seconds',
        help: 'Duration of life-cycle hooks by phase',
        labelNames: ['phase'],
        buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
        registers: [registry],
      }),
  };
}

function resultLabel(r: HookResult): string {
  if (r.ok) return 'ok';
  if (r.timedOut) return 'timeout';
  if (r.error !== undefined) return 'error';
  return 'failed';
}

export function createHookRunner(opts: HookRunnerOptions): HookRunner {
  const m = opts.metrics === undefined ? undefined : hookMetrics(opts.metrics);
  const maxQueued = opts.maxQueued ?? DEFAULT_MAX_QUEUED_HOOKS;
  let queue: Promise<unknown> = Promise.resolve();
  let pending = 0;
  let closed = false;

  const runOne = async (phase: Phase, previousPhase: Phase | undefined, hook: HookConfig) => {
    const result = await runHook({
      phase,
      previousPhase,
      nodeId: opts.nodeId,
      sipUri: opts.sipUri,
      command: hook.command,
      timeoutMs: hook.timeoutMs,
      env: opts.env,
      logger: opts.logger,
    });
    m?.runs.inc({ phase, result: resultLabel(result) });
    m?.seconds.observe({ phase }, result.durationMs / 1000);
    return result;
  };

  return {
    run(phase, previousPhase) {
      const hook = opts.hooks[phase];
      if (hook === undefined) return Promise.resolve(undefined);
      if (closed || pending >= maxQueued) {
        opts.logger.error(
          { phase, pending, closed },
          closed ? 'hook not run: the hook runner is closed' : 'hook dropped: too many hooks queued',
        );
        m?.runs.inc({ phase, result: 'dropped' });
        return Promise.resolve(undefined);
      }
      pending++;
      const done = queue.then(() => runOne(phase, previousPhase, hook));
      // runHook never rejects; the catch only keeps the chain alive should a metric throw.
      queue = done.catch(() => undefined).finally(() => pending--);
      return done.catch((err: unknown) => {
        opts.logger.error({ phase, err: describeError(err) }, 'hook runner error');
        return undefined;
      });
    },
    pending: () => pending,
    async idle() {
      await queue;
    },
    async close() {
      closed = true;
      await queue;
    },
  };
}

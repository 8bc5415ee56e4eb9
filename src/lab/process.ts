import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { Logger } from '../core/logger.ts';

/**
 * One long-running process of a lab host (etcd, Kamailio, a dispatcher, keepalived, an agent),
 * started in its own process group and restarted after 500 ms when it dies, as the host's init
 * system would (systemd's Restart=always). A scenario can kill it (the whole group, so nothing
 * is left holding ports), hold it down (a lost host) and let it come back.
 *
 * Output goes to a log file per process. No shell: argv as given (with `ip netns exec NS` first).
 */
export interface LabProcess {
  readonly name: string;
  readonly logFile: string;
  pid(): number | undefined;
  running(): boolean;
  /** Signals the process group. With `hold`, it is not restarted until release(). */
  kill(signal: NodeJS.Signals, opts?: { hold?: boolean }): void;
  /** Starts it again (after a hold). */
  release(): void;
  /** Stops it for good: SIGTERM to the group, SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
  /** Restarts so far. */
  restarts(): number;
}

const DEFAULT_RESTART_DELAY_MS = 500;

export function startLabProcess(opts: {
  name: string;
  argv: readonly string[];
  logFile: string;
  cwd: string;
  env?: NodeJS.ProcessEnv;
  logger: Logger;
  /** Restart when it exits by itself (default true). */
  restart?: boolean;
  /** Wait before a restart (systemd's RestartSec); default 500 ms. */
  restartDelayMs?: number;
}): LabProcess {
  let child: ChildProcess | undefined;
  let held = false;
  let stopped = false;
  let restarts = 0;
  let timer: NodeJS.Timeout | undefined;
  const log = opts.logger.child({ process: opts.name });

  const alive = (c: ChildProcess | undefined) =>
    c !== undefined && c.exitCode === null && c.signalCode === null;
  const signalGroup = (signal: NodeJS.Signals) => {
    const c = child;
    if (!alive(c) || c?.pid === undefined) return;
    try {
      process.kill(-c.pid, signal);
    } catch {
      // gone meanwhile
    }
  };

  const launch = () => {
    if (stopped || held) return;
    const fd = openSync(opts.logFile, 'a');
    let c: ChildProcess;
    try {
      const [cmd, ...args] = opts.argv;
      c = spawn(cmd as string, args, {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        stdio: ['ignore', fd, fd],
        detached: true,
      });
    } finally {
      closeSync(fd);
    }
    child = c;
    c.once('error', (err) => log.warn({ err: err.message }, 'cannot start'));
    c.once('exit', (code, signal) => {
      // Orphans of the group (Kamailio's children) would hold the ports against the restart.
      if (c.pid !== undefined)
        try {
          process.kill(-c.pid, 'SIGKILL');
        } catch {
          // nothing left
        }
      if (child !== c) return;
      log.debug({ code, signal }, 'exited');
      if (!stopped && !held && opts.restart !== false) {
        restarts++;
        timer = setTimeout(launch, opts.restartDelayMs ?? DEFAULT_RESTART_DELAY_MS);
      }
    });
  };
  launch();

  return {
    name: opts.name,
    logFile: opts.logFile,
    pid: () => (alive(child) ? child?.pid : undefined),
    running: () => alive(child),
    kill(signal, o = {}) {
      if (o.hold) held = true;
      clearTimeout(timer);
      signalGroup(signal);
    },
    release() {
      held = false;
      if (!alive(child)) launch();
    },
    async stop(graceMs = 5000) {
      stopped = true;
      clearTimeout(timer);
      const c = child;
      if (!alive(c)) return;
      const exited = new Promise<void>((r) => c?.once('exit', () => r()));
      signalGroup('SIGTERM');
      const t = setTimeout(() => signalGroup('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
    restarts: () => restarts,
  };
}

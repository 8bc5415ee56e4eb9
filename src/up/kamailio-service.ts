import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSupervisor, type Supervisor } from '../agent/supervisor.ts';
import type { ServiceStatus } from '../console/model.ts';
import { ErrorCode, SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { createKamailioRpc } from '../net/kamailio-rpc.ts';
import type { KamailioRpc } from '../net/kamailio-rpc-types.ts';
import {
  checkKamailioConfig,
  type KamailioLbOptionsInput,
  kamailioCommand,
  renderKamailioConfig,
} from './kamailio-config.ts';

/**
 * The Kamailio of `switchyard up`, run by the same supervisor the agent uses for Asterisk:
 * config generated from deploy/kamailio/kamailio.cfg (or the operator's own file), checked with
 * `kamailio -c` before the first start, then started in the foreground, restarted with back-off
 * when it dies, declared failed on a crash loop. Ready means its JSON-RPC answers.
 */

export interface KamailioServiceOptions {
  bin: string;
  /** Holds kamailio.cfg (generated), run/ (rundir) and dispatcher.list. */
  workDir: string;
  /** Generated config options; listFile and runDir are filled in from workDir. */
  lb: Omit<KamailioLbOptionsInput, 'listFile' | 'runDir'>;
  /** The operator's own kamailio.cfg instead of the generated one. */
  configFile?: string;
  logger: Logger;
}

export interface KamailioService {
  readonly listFile: string;
  readonly rpcUrl: string;
  readonly cfgPath: string;
  /** The main Kamailio process, while it runs. */
  pid(): number | undefined;
  status(): ServiceStatus;
  onChange(fn: () => void): void;
  /** Resolves once JSON-RPC answers (rejects after timeoutMs, or when the supervisor gives up). */
  waitReady(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

/** Probe interval of the JSON-RPC readiness check. */
const READY_POLL_MS = 250;

export async function startKamailioService(opts: KamailioServiceOptions): Promise<KamailioService> {
  const { logger } = opts;
  const runDir = join(opts.workDir, 'run');
  const listFile = join(opts.workDir, 'dispatcher.list');
  mkdirSync(runDir, { recursive: true });
  // dispatcher loads list_file at start; an empty one is a valid empty set.
  if (!existsSync(listFile)) writeFileSync(listFile, '');
  const httpPort = opts.lb.httpPort ?? 5071;
  let cfgPath = opts.configFile;
  if (cfgPath === undefined) {
    cfgPath = join(opts.workDir, 'kamailio.cfg');
    writeFileSync(cfgPath, renderKamailioConfig({ ...opts.lb, listFile, runDir }));
  }
  const check = await checkKamailioConfig({ bin: opts.bin, cfgPath });
  if (!check.ok)
    throw new SwitchyardError(ErrorCode.CONFIG_INVALID, `kamailio -c refused ${cfgPath}:\n${check.reason}`);

  const rpcUrl = `http://127.0.0.1:${httpPort}/RPC`;
  const rpc: KamailioRpc = createKamailioRpc({ url: rpcUrl, timeoutMs: 1000, logger });
  const { command, args } = kamailioCommand({ bin: opts.bin, cfgPath });
  const supervisor: Supervisor = createSupervisor({
    command: [command, ...args],
    // No orphan Kamailio left holding the SIP and RPC ports for the next `up`.
    parentDeathSignal: 'SIGTERM',
    logger: logger.child({ component: 'kamailio' }),
    restart: { initialBackoffMs: 500, maxBackoffMs: 10_000, crashLoopRestarts: 5, crashLoopWindowMs: 60_000 },
    stopGraceMs: 5000,
  });
  const listeners = new Set<() => void>();
  let rpcAnswers = false;
  let stopped = false;
  let pollTimer: NodeJS.Timeout | undefined;
  const notify = () => {
    for (const fn of listeners) fn();
  };
  const setAnswers = (ok: boolean) => {
    if (ok === rpcAnswers) return;
    rpcAnswers = ok;
    logger.info({ rpcUrl, answering: ok }, ok ? 'kamailio ready' : 'kamailio not answering');
    notify();
  };
  // One poll in flight at a time; stops with stop().
  const poll = async () => {
    if (stopped) return;
    try {
      await rpc.call('core.version', []);
      setAnswers(supervisor.state === 'running');
    } catch {
      setAnswers(false);
    }
    if (!stopped) pollTimer = setTimeout(() => void poll(), rpcAnswers ? 2000 : READY_POLL_MS);
  };
  supervisor.on('started', ({ pid, restarts }) => {
    logger.info({ pid, restarts }, 'kamailio started');
    notify();
  });
  supervisor.on('exited', (info) => {
    if (!info.expected)
      logger.warn({ code: info.code, signal: info.signal, error: info.error }, 'kamailio exited');
    setAnswers(false);
    notify();
  });
  supervisor.on('crash-loop', ({ reason }) => {
    logger.error({ reason }, 'kamailio crash loop: not restarting');
    notify();
  });
  await supervisor.start();
  void poll();

  return {
    listFile,
    rpcUrl,
    cfgPath,
    pid: () => supervisor.pid,
    status() {
      const state =
        supervisor.state === 'running'
          ? rpcAnswers
            ? 'running'
            : 'starting'
          : supervisor.state === 'backoff' || supervisor.state === 'exited'
            ? 'restarting'
            : supervisor.state;
      const detail =
        supervisor.state === 'failed'
          ? (supervisor.failure ?? 'crash loop')
          : `pid ${supervisor.pid ?? '-'}, restarts ${supervisor.restarts}, ${rpcUrl}`;
      return { name: 'kamailio', state, detail };
    },
    onChange: (fn) => void listeners.add(fn),
    waitReady(timeoutMs) {
      return new Promise((resolve, reject) => {
        const deadline = Date.now() + timeoutMs;
        const tick = () => {
          if (rpcAnswers) return resolve();
          if (supervisor.state === 'failed')
            return reject(
              new SwitchyardError(ErrorCode.KAMAILIO_UNREACHABLE, `kamailio failed: ${supervisor.failure}`),
            );
          if (Date.now() > deadline)
            return reject(
              new SwitchyardError(
                ErrorCode.KAMAILIO_UNREACHABLE,
                `kamailio's JSON-RPC did not answer within ${timeoutMs} ms`,
              ),
            );
          setTimeout(tick, 100);
        };
        tick();
      });
    },
    async stop() {
      stopped = true;
      clearTimeout(pollTimer);
      await supervisor.stop();
      await rpc.close();
    },
  };
}

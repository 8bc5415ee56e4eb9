import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../src/core/logger.ts';
import { createKamailioRpc } from '../../src/net/kamailio-rpc.ts';
import type { KamailioRpc } from '../../src/net/kamailio-rpc-types.ts';
import {
  assertLoopback,
  type Daemon,
  registerTempDir,
  removeTempDir,
  spawnDaemon,
  stopDaemon,
  tailFile,
} from './daemon.ts';
import { freeTcpPort, freeUdpPort, loopbackHost } from './ports.ts';
import { sleep } from './wait.ts';

/**
 * A real Kamailio 5.6 load balancer (Debian's package) for integration tests and benchmarks,
 * running test/fixtures/kamailio/test-lb.cfg: dispatcher set 1 selected with `alg` (9 = weight),
 * OPTIONS probing every `pingIntervalS`, failover in failure_route, JSON-RPC over HTTP on
 * 127.0.0.1:<free port>/RPC. SIP listens on UDP `sipIp:sipPort`, by default a loopback address of
 * its own (ports.ts loopbackHost) and a free port.
 *
 * Life cycle:
 *   const kam = await startKamailio({ initialList: '1 sip:127.0.0.2:5060 0 0 duid=as1;weight=100\n' });
 *   await kam.rpc.reload();          // after editing kam.listFile
 *   await kam.stop();                // process gone; files kept, so...
 *   await kam.restart();             // ...it can come back on the same ports and files
 *   await kam.dispose();             // stop + remove the work dir (also done at process exit)
 *
 * Kamailio is spawned directly (no shell, its own process group) with `-DD -E`: the pid is the
 * main process, stdout/stderr go to `workDir/kamailio.log` (see logTail). stop() sends SIGTERM to
 * the main pid (Kamailio then stops its children, about 2 s) and SIGKILLs the whole group after
 * 5 s; the test process exiting for any reason SIGKILLs it too.
 */

export interface StartKamailioOptions {
  /** SIP UDP listen address, loopback only. Default: a loopback address of its own. */
  sipIp?: string;
  /** Default: a free UDP+TCP port on sipIp. */
  sipPort?: number;
  /** modparam dispatcher reload_delta, seconds (default 1; Kamailio's own default is 5). */
  reloadDeltaS?: number;
  /** modparam dispatcher ds_ping_interval, seconds (default 1). */
  pingIntervalS?: number;
  /** modparam tm fr_timer: how long a ping or request waits for a reply (default 2000 ms). */
  frTimerMs?: number;
  /** The dispatcher list file. Default: `workDir/dispatcher.list`. */
  listFile?: string;
  /** Written to listFile before start. Without it an existing listFile is kept, a missing one created empty. */
  initialList?: string;
  /** ds_select_dst algorithm for set 1 (default 9, weight). 10 (call load) is not supported by the cfg. */
  alg?: number;
  /** Ready deadline: JSON-RPC `core.version` must answer within this (default 5000 ms). */
  startTimeoutMs?: number;
  /** Mirror every SIP message as HEP3 (siptrace) to this UDP port on 127.0.0.1. */
  hep?: { port: number; captureId: number };
  /** Deadline of each call of `rpc` (default 2000 ms). */
  rpcTimeoutMs?: number;
  /** Given to the `rpc` client. */
  logger?: Logger;
}

export interface KamailioInstance {
  readonly sipIp: string;
  readonly sipPort: number;
  readonly httpPort: number;
  /** `http://127.0.0.1:<httpPort>/RPC` */
  readonly rpcUrl: string;
  readonly listFile: string;
  /** Main process pid; changes with restart(). */
  readonly pid: number;
  /** Holds kamailio.log, run/ and (by default) dispatcher.list. */
  readonly workDir: string;
  /** A client for rpcUrl; survives restart(), closed by dispose(). */
  readonly rpc: KamailioRpc;
  running(): boolean;
  /** SIGTERM, SIGKILL after 5 s. Keeps the files so restart() can follow. Idempotent. */
  stop(): Promise<void>;
  /** Stops if running, then starts again with the same ports, cfg and list file. */
  restart(): Promise<void>;
  /** Stops and removes the work dir. */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
  /** The last `lines` lines of Kamailio's log (all runs of this instance). */
  logTail(lines?: number): string;
}

export const TEST_LB_CFG = fileURLToPath(new URL('../fixtures/kamailio/test-lb.cfg', import.meta.url));
const KAMAILIO_BIN = 'kamailio';
const SUPPORTED_ALGS = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13]);

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`startKamailio: ${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
}

/** A substdef value goes between '!' delimiters on the command line: refuse anything that could break out. */
function substdef(name: string, value: string | number): string {
  const text = String(value);
  if (!/^[A-Za-z0-9._/:+-]+$/.test(text)) throw new Error(`startKamailio: unsafe value for ${name}: ${text}`);
  return `--substdef=!${name}!${text}!g`;
}

async function pollReady(
  daemon: Daemon,
  rpc: KamailioRpc,
  timeoutMs: number,
): Promise<{ ok: true } | { ok: false; why: string }> {
  const deadline = performance.now() + timeoutMs;
  let last = 'no answer yet';
  // Bounded: at most timeoutMs / 25 ms iterations.
  while (performance.now() < deadline) {
    if (!daemon.running()) {
      const { code, signal } = await daemon.exited;
      return { ok: false, why: `kamailio exited during start-up (code ${code}, signal ${signal})` };
    }
    try {
      await rpc.call('core.version');
      return { ok: true };
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(25);
  }
  return { ok: false, why: `kamailio not ready within ${timeoutMs} ms (last: ${last})` };
}

/** Starts Kamailio and resolves once it answers JSON-RPC; rejects with its log tail otherwise. */
export async function startKamailio(opts: StartKamailioOptions = {}): Promise<KamailioInstance> {
  const sipIp = opts.sipIp ?? loopbackHost();
  assertLoopback(sipIp);
  const reloadDeltaS = opts.reloadDeltaS ?? 1;
  const pingIntervalS = opts.pingIntervalS ?? 1;
  const frTimerMs = opts.frTimerMs ?? 2000;
  const alg = opts.alg ?? 9;
  const startTimeoutMs = opts.startTimeoutMs ?? 5000;
  checkInteger('reloadDeltaS', reloadDeltaS, 0, 3600);
  checkInteger('pingIntervalS', pingIntervalS, 1, 3600);
  checkInteger('frTimerMs', frTimerMs, 100, 60_000);
  if (opts.hep) {
    checkInteger('hep.port', opts.hep.port, 1, 65535);
    checkInteger('hep.captureId', opts.hep.captureId, 0, 2 ** 31 - 1);
  }
  if (!SUPPORTED_ALGS.has(alg)) throw new Error(`startKamailio: alg ${alg} is not supported by test-lb.cfg`);

  const workDir = await mkdtemp(join(tmpdir(), 'sy-kamailio-'));
  registerTempDir(workDir);
  try {
    if (opts.sipPort !== undefined) checkInteger('sipPort', opts.sipPort, 1, 65535);
    const listFile = opts.listFile ?? join(workDir, 'dispatcher.list');
    const runDir = join(workDir, 'run');
    const logFile = join(workDir, 'kamailio.log');
    await mkdir(runDir);
    // Kamailio refuses to start when list_file is missing.
    if (opts.initialList !== undefined) await writeFile(listFile, opts.initialList);
    else if (!existsSync(listFile)) await writeFile(listFile, '# setid destination flags priority attrs\n');

    const argsFor = (sipPort: number, httpPort: number): string[] => [
      '-f',
      TEST_LB_CFG,
      '-DD',
      '-E',
      '-m',
      '64',
      '-M',
      '8',
      substdef('SIP_IP', sipIp),
      substdef('SIP_PORT', sipPort),
      substdef('HTTP_PORT', httpPort),
      substdef('RUNDIR', runDir),
      substdef('LIST_FILE', listFile),
      substdef('RELOAD_DELTA', reloadDeltaS),
      substdef('PING_INTERVAL', pingIntervalS),
      substdef('FR_TIMER_MS', frTimerMs),
      substdef('ALG', alg),
      ...(opts.hep
        ? [
            '-A',
            'WITH_SIPTRACE',
            substdef('HEP_PORT', opts.hep.port),
            substdef('HEP_CAPTURE_ID', opts.hep.captureId),
          ]
        : []),
    ];

    /** Spawns and waits for JSON-RPC; on failure the daemon is gone and the error has the log tail. */
    const launch = async (args: string[], probeRpc: KamailioRpc): Promise<Daemon> => {
      const d = await spawnDaemon(KAMAILIO_BIN, args, { cwd: workDir, logFile, group: true });
      const ready = await pollReady(d, probeRpc, startTimeoutMs);
      if (!ready.ok) {
        await stopDaemon(d, { killAfterMs: 1000 });
        throw new Error(`${ready.why}\n--- kamailio.log (tail) ---\n${tailFile(logFile, 30)}`);
      }
      return d;
    };

    // Free ports are picked before Kamailio binds them, so another process can take one in
    // between: when the ports were ours to choose, a bind failure gets fresh ports (3 tries).
    let sipPort = 0;
    let httpPort = 0;
    let args: string[] = [];
    // Readiness polls use their own short-deadline client so a slow answer cannot eat the budget.
    let probeRpc: KamailioRpc | undefined;
    let daemon: Daemon | undefined;
    for (let attempt = 1; !daemon; attempt++) {
      sipPort = opts.sipPort ?? (await freeUdpPort(sipIp));
      httpPort = await freeTcpPort('127.0.0.1');
      args = argsFor(sipPort, httpPort);
      probeRpc = createKamailioRpc({ url: `http://127.0.0.1:${httpPort}/RPC`, timeoutMs: 500 });
      try {
        daemon = await launch(args, probeRpc);
      } catch (err) {
        await probeRpc.close();
        const portClash = /Address already in use/i.test((err as Error).message);
        if (!portClash || attempt >= 3) throw err;
      }
    }
    const readyRpc = probeRpc!;
    const rpcUrl = `http://127.0.0.1:${httpPort}/RPC`;
    const rpc = createKamailioRpc({
      url: rpcUrl,
      timeoutMs: opts.rpcTimeoutMs ?? 2000,
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
    let current: Daemon = daemon;
    let disposed = false;

    const stop = async (): Promise<void> => {
      await stopDaemon(current, { killAfterMs: 5000 });
    };

    const instance: KamailioInstance = {
      sipIp,
      sipPort,
      httpPort,
      rpcUrl,
      listFile,
      workDir,
      rpc,
      get pid() {
        return current.pid;
      },
      running: () => current.running(),
      stop,
      async restart() {
        if (disposed) throw new Error('kamailio instance is disposed');
        await stop();
        current = await launch(args, readyRpc);
      },
      async dispose() {
        if (disposed) return;
        disposed = true;
        await stop();
        await rpc.close();
        await readyRpc.close();
        removeTempDir(workDir);
      },
      [Symbol.asyncDispose]() {
        return this.dispose();
      },
      logTail: (lines = 40) => tailFile(logFile, lines),
    };
    return instance;
  } catch (err) {
    removeTempDir(workDir);
    throw err;
  }
}

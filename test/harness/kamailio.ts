import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../src/core/logger.ts';
import { createKamailioRpc } from '../../src/net/kamailio-rpc.ts';
import type { KamailioRpc } from '../../src/net/kamailio-rpc-types.ts';
import {
  formatKamailioOptionsError,
  type KamailioLbOptions,
  type KamailioLbOptionsInput,
  kamailioCommand,
  kamailioLbOptionsSchema,
  renderKamailioConfig,
} from '../../src/up/kamailio-config.ts';
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
 * running the production template deploy/kamailio/kamailio.cfg rendered by
 * src/up/kamailio-config.ts into `workDir/kamailio.cfg`: dispatcher set 1 selected by weight
 * (alg 9) unless told otherwise, OPTIONS probing every `pingIntervalS`, failover in
 * failure_route, JSON-RPC over HTTP on 127.0.0.1:<free port>/RPC. SIP listens on UDP
 * `sipIp:sipPort`, by default a loopback address of its own (ports.ts loopbackHost) and a free
 * port.
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
  /**
   * ds_select_dst algorithm for set 1: 9 (weight, the default) or 11 (relative weight). For call
   * load (10) use `algorithm: 'call-load'`.
   */
  alg?: number;
  /** The template's algorithm; wins over `alg`. */
  algorithm?: KamailioLbOptions['algorithm'];
  /** modparam tm fr_inv_timer: how long an INVITE may ring (default 30000 ms). */
  frInvTimerMs?: number;
  /** Extra SIP listen address (the template's LISTEN_VIP), loopback only. */
  listenVip?: string;
  /** Ready deadline: JSON-RPC `core.version` must answer within this (default 5000 ms). */
  startTimeoutMs?: number;
  /**
   * Mirror SIP as HEP3 (siptrace) to this UDP port on 127.0.0.1. `traceKeepalives` defaults to
   * true here, so `hep` keeps meaning "every SIP message" as it always did for these tests; the
   * production default (renderKamailioConfig) is false: OPTIONS keep-alives are not mirrored.
   */
  hep?: { port: number; captureId: number; traceKeepalives?: boolean };
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
  /** Holds kamailio.cfg, kamailio.log, run/ and (by default) dispatcher.list. */
  readonly workDir: string;
  /** The rendered config Kamailio runs. */
  readonly cfgFile: string;
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

const KAMAILIO_BIN = 'kamailio';
/** `alg` values the template can run without call load. */
const ALG_TO_ALGORITHM = new Map<number, KamailioLbOptions['algorithm']>([
  [9, 'weight'],
  [11, 'relative-weight'],
]);

/** The harness's names for the template options, checked by the production schema. */
function checkOptions(input: KamailioLbOptionsInput): void {
  const parsed = kamailioLbOptionsSchema.safeParse(input);
  if (!parsed.success) {
    const reason = formatKamailioOptionsError(parsed.error).split('\n').join('; ');
    throw new Error(`startKamailio: ${reason}`);
  }
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
  if (opts.listenVip !== undefined) assertLoopback(opts.listenVip);
  const alg = opts.alg ?? 9;
  const algorithm = opts.algorithm ?? ALG_TO_ALGORITHM.get(alg);
  if (algorithm === undefined) {
    throw new Error(`startKamailio: alg ${alg} is not supported (9 or 11; algorithm: 'call-load' for 10)`);
  }
  const startTimeoutMs = opts.startTimeoutMs ?? 5000;
  /** Everything but the ports and paths, which are only known below. */
  const fixed = {
    sipIp,
    reloadDeltaS: opts.reloadDeltaS ?? 1,
    pingIntervalS: opts.pingIntervalS ?? 1,
    frTimerMs: opts.frTimerMs ?? 2000,
    ...(opts.frInvTimerMs === undefined ? {} : { frInvTimerMs: opts.frInvTimerMs }),
    algorithm,
    ...(opts.listenVip === undefined ? {} : { listenVip: opts.listenVip }),
    ...(opts.hep
      ? {
          hep: {
            ip: '127.0.0.1',
            port: opts.hep.port,
            captureId: opts.hep.captureId,
            traceKeepalives: opts.hep.traceKeepalives ?? true,
          },
        }
      : {}),
  } satisfies Partial<KamailioLbOptionsInput>;
  // Fail fast, before any file or process exists; paths and ports here are placeholders.
  checkOptions({
    ...fixed,
    listFile: '/x',
    ...(opts.sipPort === undefined ? {} : { sipPort: opts.sipPort }),
  });

  const workDir = await mkdtemp(join(tmpdir(), 'sy-kamailio-'));
  registerTempDir(workDir);
  try {
    const listFile = opts.listFile ?? join(workDir, 'dispatcher.list');
    const runDir = join(workDir, 'run');
    const logFile = join(workDir, 'kamailio.log');
    const cfgFile = join(workDir, 'kamailio.cfg');
    await mkdir(runDir);
    // Kamailio refuses to start when list_file is missing.
    if (opts.initialList !== undefined) await writeFile(listFile, opts.initialList);
    else if (!existsSync(listFile)) await writeFile(listFile, '# setid destination flags priority attrs\n');

    /** Renders the production template for these ports; returns the argv to run it. */
    const argsFor = async (sipPort: number, httpPort: number): Promise<string[]> => {
      await writeFile(cfgFile, renderKamailioConfig({ ...fixed, sipPort, httpPort, runDir, listFile }));
      return kamailioCommand({ bin: KAMAILIO_BIN, cfgPath: cfgFile }).args;
    };

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
      args = await argsFor(sipPort, httpPort);
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
      cfgFile,
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

import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { type Daemon, registerTempDir, removeTempDir, spawnDaemon, stopDaemon, tailFile } from './daemon.ts';
import { freeTcpPort, freeUdpPort, loopbackHost } from './ports.ts';
import { waitFor } from './wait.ts';

/**
 * `switchyard up` as a user runs it (bin/switchyard.js, a config file, demo mode), on a loopback
 * address of its own: Kamailio, the demo backends and the caller share that address with their
 * usual ports; the console, Kamailio's JSON-RPC and the capture server get free ports on
 * 127.0.0.1. stop() sends SIGINT (Ctrl-C) and waits for the clean exit.
 */

export interface UpInstance {
  readonly consoleUrl: string;
  readonly loginUrl: string;
  readonly adminToken: string;
  readonly readToken: string;
  /** The SIP address of Kamailio: `ip:port`. */
  readonly sip: string;
  readonly ip: string;
  readonly dataDir: string;
  readonly daemon: Daemon;
  /** Everything `up` printed (stdout and stderr). */
  output(): string;
  /** SIGINT; resolves with the exit code and how long the stop took. */
  stop(): Promise<{ code: number | null; ms: number }>;
  dispose(): Promise<void>;
}

export interface StartUpOptions {
  callsPerSecond?: number;
  callDurationMs?: number;
  backends?: number;
  /** Deadline for "switchyard is up." (default 30 s). */
  startTimeoutMs?: number;
}

const BIN = resolve(import.meta.dirname, '../../bin/switchyard.js');

export async function startUp(opts: StartUpOptions = {}): Promise<UpInstance> {
  const dir = await mkdtemp(join(tmpdir(), 'sy-up-'));
  registerTempDir(dir);
  const ip = loopbackHost();
  const consolePort = await freeTcpPort();
  const config = {
    dataDir: join(dir, 'var'),
    kamailio: {
      sipIp: ip,
      sipPort: 5060,
      rpcPort: await freeTcpPort(),
      pingIntervalS: 1,
      reloadDeltaS: 1,
    },
    capture: { listen: `udp://127.0.0.1:${await freeUdpPort()}` },
    console: { port: consolePort },
    demo: {
      enabled: true,
      backends: opts.backends ?? 3,
      backendIp: ip,
      firstPort: 5081,
      callerIp: ip,
      callerPort: 5090,
      callsPerSecond: opts.callsPerSecond ?? 4,
      callDurationMs: opts.callDurationMs ?? 3000,
    },
    log: { level: 'info' },
  };
  const configFile = join(dir, 'switchyard.yaml');
  await writeFile(configFile, stringify(config));
  const logFile = join(dir, 'up.out');
  const daemon = await spawnDaemon(process.execPath, [BIN, 'up', '--config', configFile, '--no-install'], {
    cwd: dir,
    logFile,
    group: true,
  });
  const output = () => tailFile(logFile, 10_000);
  try {
    await waitFor(() => output().includes('switchyard is up.') || !daemon.running(), {
      timeoutMs: opts.startTimeoutMs ?? 30_000,
      what: 'switchyard up to start',
    });
  } catch (err) {
    await stopDaemon(daemon, { signal: 'SIGINT', killAfterMs: 20_000 });
    throw new Error(`${(err as Error).message}\n${tailFile(logFile, 40)}`);
  }
  if (!daemon.running()) throw new Error(`switchyard up exited:\n${tailFile(logFile, 40)}`);
  const loginUrl = /sign in\s+(http:\/\/\S+)/.exec(output())?.[1] ?? '';
  const token = async (name: string) => (await readFile(join(dir, 'var/console', name), 'utf8')).trim();
  return {
    consoleUrl: `http://127.0.0.1:${consolePort}`,
    loginUrl,
    adminToken: await token('admin.token'),
    readToken: await token('read.token'),
    sip: `${ip}:5060`,
    ip,
    dataDir: config.dataDir,
    daemon,
    output,
    async stop() {
      const t0 = Date.now();
      const r = await stopDaemon(daemon, { signal: 'SIGINT', killAfterMs: 65_000 });
      return { code: r.code, ms: Date.now() - t0 };
    },
    async dispose() {
      if (daemon.running()) await stopDaemon(daemon, { signal: 'SIGINT', killAfterMs: 65_000 });
      removeTempDir(dir);
    },
  };
}

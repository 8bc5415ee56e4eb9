import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOptionsPinger } from '../../src/net/options-pinger.ts';
import { sippBindArgs } from '../../src/up/sipp-process.ts';
import {
  assertLoopback,
  type Daemon,
  registerTempDir,
  removeTempDir,
  spawnDaemon,
  stopDaemon,
  tailFile,
} from './daemon.ts';
import { sleep } from './wait.ts';

/**
 * SIPp 3.6 (Debian's sip-tester) as backends and as a call generator behind the test Kamailio,
 * with the scenarios of research/real-components.md §2.4 (test/fixtures/sipp):
 * - uas_lb.xml answers OPTIONS with 200 (so Kamailio's probing and our pinger see it up),
 *   answers INVITE with 180, then 200 carrying `X-Backend: <its ip>`, echoes Record-Route.
 * - uac_lb.xml places calls through a record-routing proxy and logs `CALL <id> BACKEND [...]`
 *   for every 200 OK, which is how calls are counted per backend.
 *
 * Every SIPp binds only its own loopback address: SIP (-i/-bind_local), media (-mi) and the
 * control socket (-ci; it would bind 0.0.0.0:8888 otherwise). It runs in a temp dir of its own,
 * because trace files land in the working directory.
 */

const SIPP_BIN = 'sipp';
export const UAS_SCENARIO = fileURLToPath(new URL('../fixtures/sipp/uas_lb.xml', import.meta.url));
export const UAC_SCENARIO = fileURLToPath(new URL('../fixtures/sipp/uac_lb.xml', import.meta.url));

export interface SippUas {
  readonly pid: number;
  readonly ip: string;
  readonly port: number;
  /** `sip:ip:port`: what goes into a dispatcher list. */
  readonly uri: string;
  readonly workDir: string;
  running(): boolean;
  /** SIGTERM (SIPp exits in about 1 s), SIGKILL after 3 s, then removes the work dir. Idempotent. */
  stop(): Promise<void>;
  /**
   * Sends `signal` (default SIGKILL) to the pid, to simulate a crash (SIGKILL) or a hang
   * (SIGSTOP, undone by SIGCONT). Resolves when a terminating signal has taken effect; stop()
   * still has to be called to remove the work dir.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** The last lines of SIPp's stdout/stderr. */
  logTail(lines?: number): string;
  /** stop(): so that `await using uas = await startSippUas(...)` works. */
  [Symbol.asyncDispose](): Promise<void>;
}

export interface StartSippUasOptions {
  ip: string;
  port: number;
  /** How long to wait until it answers OPTIONS (default 5000 ms). */
  startTimeoutMs?: number;
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`sipp: bad port ${port}`);
}

/** Starts a SIPp UAS on ip:port and resolves when it answers an OPTIONS with 200. */
export async function startSippUas(opts: StartSippUasOptions): Promise<SippUas> {
  assertLoopback(opts.ip);
  checkPort(opts.port);
  const startTimeoutMs = opts.startTimeoutMs ?? 5000;
  const workDir = await mkdtemp(join(tmpdir(), 'sy-sipp-uas-'));
  registerTempDir(workDir);
  const logFile = join(workDir, 'sipp.log');
  const uri = `sip:${opts.ip}:${opts.port}`;
  let daemon: Daemon;
  try {
    daemon = await spawnDaemon(
      SIPP_BIN,
      ['-sf', UAS_SCENARIO, ...sippBindArgs(opts.ip, opts.port), '-nostdin', '-trace_err'],
      { cwd: workDir, logFile },
    );
  } catch (err) {
    removeTempDir(workDir);
    throw err;
  }

  const stop = async (): Promise<void> => {
    await stopDaemon(daemon, { killAfterMs: 3000 });
    removeTempDir(workDir);
  };

  // Ready = answers OPTIONS. Bounded: each probe takes at most 300 ms, until the deadline.
  const pinger = await createOptionsPinger({ bindAddress: '127.0.0.1' });
  const deadline = performance.now() + startTimeoutMs;
  let last = 'no probe yet';
  let ready = false;
  try {
    while (performance.now() < deadline && daemon.running()) {
      const result = await pinger.probe(uri, { timeoutMs: 300 });
      if (result.up) {
        ready = true;
        break;
      }
      last = result.reason ?? `status ${result.status}`;
      await sleep(20);
    }
  } finally {
    await pinger.close();
  }
  if (!ready) {
    const why = daemon.running()
      ? `did not answer OPTIONS within ${startTimeoutMs} ms (last: ${last})`
      : `exited during start-up (code ${(await daemon.exited).code})`;
    const log = tailFile(logFile, 20);
    await stop();
    throw new Error(`sipp UAS on ${opts.ip}:${opts.port} ${why}\n--- sipp log (tail) ---\n${log}`);
  }

  return {
    pid: daemon.pid,
    ip: opts.ip,
    port: opts.port,
    uri,
    workDir,
    running: () => daemon.running(),
    stop,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (!daemon.running()) return;
      process.kill(daemon.pid, signal);
      if (signal === 'SIGKILL' || signal === 'SIGTERM' || signal === 'SIGINT') await daemon.exited;
    },
    logTail: (lines = 40) => tailFile(logFile, lines),
    [Symbol.asyncDispose]: stop,
  };
}

export interface RunSippUacOptions {
  /** The proxy, `ip:port` (e.g. Kamailio's sipIp:sipPort). */
  target: string;
  /** Local address and port of the UAC, loopback. */
  ip: string;
  port: number;
  /** Total calls (-m). */
  calls: number;
  /** New calls per second (-r). */
  rate: number;
  /** How long each call stays up before BYE (-d), ms. */
  holdMs: number;
  /** SIPp's global timeout (-timeout, fails the run). Default: calls/rate + hold + 20 s. */
  timeoutS?: number;
}

export interface SippUacResult {
  /** SIPp's exit code: 0 all calls succeeded, 1 some failed, 97/99/255/254 see sipp(1). */
  exitCode: number | null;
  /** Column SuccessfulCall(C) of the last -stf statistics line. */
  successful: number;
  /** Column FailedCall(C). */
  failed: number;
  /** Answered calls per backend IP, from the X-Backend header of each 200 OK. */
  perBackend: Record<string, number>;
  /** Wall time of the run, ms. */
  elapsedMs: number;
  /** Tail of SIPp's error trace and output, for assertion messages. */
  errorTail: string;
}

/**
 * Parses SIPp's `-stf` CSV (';'-separated, header line first): counters of the last line. Columns
 * are found by name ("SuccessfulCall(C)", "FailedCall(C)"); 16 and 18 (1-based) are the fallback.
 */
export function parseSippStats(csv: string): { successful: number; failed: number } | undefined {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  if (lines.length < 2) return undefined;
  const header = lines[0]!.split(';');
  const last = lines[lines.length - 1]!.split(';');
  const col = (name: string, fallback: number): number => {
    const i = header.indexOf(name);
    const n = Number(last[i === -1 ? fallback : i]);
    return Number.isFinite(n) ? n : Number.NaN;
  };
  const successful = col('SuccessfulCall(C)', 15);
  const failed = col('FailedCall(C)', 17);
  return Number.isNaN(successful) || Number.isNaN(failed) ? undefined : { successful, failed };
}

/**
 * Counts the lines uac_lb.xml's `<log message="CALL [call_id] BACKEND [$be]"/>` writes, one per
 * 200 OK. SIPp substitutes `[$be]` with the regexp match, brackets included, so a line reads
 * `CALL 1-6479@127.79.0.9 BACKEND X-Backend: 127.79.0.2`.
 */
export function countBackends(log: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of log.matchAll(/^CALL \S+ BACKEND \[?(?:X-Backend:[ \t]*)?([0-9A-Fa-f.:]*)/gm)) {
    const ip = m[1] || 'unknown';
    out[ip] = (out[ip] ?? 0) + 1;
  }
  return out;
}

/** Runs a SIPp UAC to completion (all calls done, or the timeout) and reports what happened. */
export async function runSippUac(opts: RunSippUacOptions): Promise<SippUacResult> {
  assertLoopback(opts.ip);
  checkPort(opts.port);
  const target = /^(127\.[0-9.]+):([0-9]{1,5})$/.exec(opts.target);
  if (!target) throw new Error(`runSippUac: target must be loopback ip:port, got ${opts.target}`);
  assertLoopback(target[1]!);
  if (!Number.isInteger(opts.calls) || opts.calls < 1)
    throw new Error('runSippUac: calls must be a positive integer');
  if (!(opts.rate > 0)) throw new Error('runSippUac: rate must be positive');
  if (!Number.isInteger(opts.holdMs) || opts.holdMs < 0)
    throw new Error('runSippUac: holdMs must be an integer >= 0');
  const timeoutS = opts.timeoutS ?? Math.ceil(opts.calls / opts.rate + opts.holdMs / 1000) + 20;

  const workDir = await mkdtemp(join(tmpdir(), 'sy-sipp-uac-'));
  registerTempDir(workDir);
  const logFile = join(workDir, 'sipp.log');
  const started = performance.now();
  try {
    const daemon = await spawnDaemon(
      SIPP_BIN,
      [
        '-sf',
        UAC_SCENARIO,
        opts.target,
        ...sippBindArgs(opts.ip, opts.port),
        '-m',
        String(opts.calls),
        '-r',
        String(opts.rate),
        '-d',
        String(opts.holdMs),
        '-nostdin',
        '-trace_logs',
        '-trace_err',
        '-trace_stat',
        '-stf',
        'uac.csv',
        '-fd',
        '1',
        '-timeout',
        `${timeoutS}s`,
        '-timeout_error',
      ],
      { cwd: workDir, logFile },
    );
    // SIPp enforces -timeout itself; this is the guard against SIPp hanging regardless.
    let guard: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => {
      guard = setTimeout(() => resolve('hung'), (timeoutS + 10) * 1000);
    });
    const outcome = await Promise.race([daemon.exited, hung]);
    clearTimeout(guard);
    if (outcome === 'hung') await stopDaemon(daemon, { killAfterMs: 2000 });
    const { code } = await daemon.exited;

    const files = await readdir(workDir);
    const csv = await readFile(join(workDir, 'uac.csv'), 'utf8').catch(() => '');
    const stats = parseSippStats(csv);
    let logs = '';
    for (const f of files.filter((name) => name.endsWith('_logs.log')))
      logs += await readFile(join(workDir, f), 'utf8');
    let errors = '';
    for (const f of files.filter((name) => name.endsWith('_errors.log'))) {
      errors += tailFile(join(workDir, f), 15);
    }
    return {
      exitCode: code,
      successful: stats?.successful ?? 0,
      failed: stats?.failed ?? opts.calls,
      perBackend: countBackends(logs),
      elapsedMs: Math.round(performance.now() - started),
      errorTail: `${errors}\n${tailFile(logFile, 10)}`.trim(),
    };
  } finally {
    removeTempDir(workDir);
  }
}

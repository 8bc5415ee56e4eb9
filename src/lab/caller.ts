import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, open, readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, SwitchyardError } from '../core/errors.ts';
import { parentDeathPrefix } from '../core/executables.ts';
import type { Logger } from '../core/logger.ts';
import { fail, ok, type Result } from '../core/result.ts';
import { forwardLines, signalGroup, sippUacArgs, stopSippUac } from '../up/sipp-process.ts';

/**
 * The HA lab's load generator: a SIPp UAC that places calls at the VIP and accounts for every one
 * of them. The numbers come from SIPp's own per-message counters (-trace_counts), which tell
 * *where* in the scenario a call failed, so a new call that never got a 2xx and an established
 * call that lost its BYE are told apart without a scenario of our own.
 *
 * Checked on SIPp 3.6.1 (Debian's sip-tester): -trace_counts writes `<scenario>_<pid>_counts.csv`
 * in the working directory (the name cannot be chosen, so no FIFO: we tail the real file). With
 * `-fd 1` SIPp *appends* one line per second plus one or two at exit. Fields are `;`-separated and
 * every line ends with `;`. The header is
 *   CurrentTime;ElapsedTime;0_INVITE_Sent;0_INVITE_Retrans;0_INVITE_Timeout;1_100_Recv;...
 * one group per scenario element, named `<index>_<message>_<counter>`: send elements have
 * Sent/Retrans/Timeout, recv elements Recv/Retrans/Timeout/Unexp, a pause Sessions/Unexp. The
 * CurrentTime field of a data line itself holds tabs ("2026-12-01\t13:02:43.140427\t1796...").
 * Observed: a 503 to the INVITE counts on `1_100_Unexp` (the element the call waited at); an
 * INVITE to a dead backend on `0_INVITE_Timeout` and a BYE to it on `6_BYE_Timeout`, each about
 * 31 s after it was first sent (SIPp's default retransmission counts, 500 ms doubling).
 */

/** deploy/demo/demo-caller.xml: two levels up from both src/lab/ and dist/lab/. */
export const DEFAULT_CALLER_SCENARIO = fileURLToPath(
  new URL('../../deploy/demo/demo-caller.xml', import.meta.url),
);

export interface CallerCounts {
  /** INVITEs placed (first transmissions). */
  attempted: number;
  /** INVITEs answered with the 200 the scenario waits for. */
  answered: number;
  /** INVITEs that never got their 2xx: error response, Timer B timeout, unexpected message. */
  failedNew: number;
  /** Calls whose BYE was answered with 200. */
  completed: number;
  /** Answered calls that then failed: the BYE got no 200 (timeout or error), or the call broke. */
  lostEstablished: number;
  /** attempted minus every outcome above: calls still running (or cut off by SIGTERM at stop). */
  inProgress: number;
}

export const ZERO_COUNTS: Readonly<CallerCounts> = Object.freeze({
  attempted: 0,
  answered: 0,
  failedNew: 0,
  completed: 0,
  lostEstablished: 0,
  inProgress: 0,
});

/** Where the counters we need sit in a counts-file line (0-based field positions). */
export interface CountsLayout {
  attempted: number;
  answered: number;
  completed: number;
  /** Timeout and Unexp fields of the elements up to and including the answer. */
  failedNew: number[];
  /** Timeout and Unexp fields of the elements after the answer (ACK, pause, BYE, its 200). */
  lostEstablished: number[];
}

/** SIPp's lines are a few hundred bytes; anything much longer is not one of them. */
export const MAX_COUNTS_LINE_CHARS = 16 * 1024;

const COLUMN = /^([0-9]{1,4})_([A-Za-z0-9]{1,32})_(Sent|Recv|Retrans|Timeout|Unexp|Sessions)$/;

interface Column {
  field: number;
  element: number;
  message: string;
  counter: string;
}

/**
 * Decodes the header into a layout, from the scenario's structure rather than fixed positions:
 * attempted is the first INVITE's Sent; answered the first 2xx Recv after it; completed the
 * last 2xx Recv after the first BYE's Sent. Every Timeout/Unexp up to the answer is a failed new
 * call; every one after it an established call lost.
 */
export function parseCountsHeader(line: string): Result<CountsLayout> {
  if (line.length > MAX_COUNTS_LINE_CHARS) return fail('line too long');
  const fields = line.replace(/\r$/, '').split(';');
  if (fields[0] !== 'CurrentTime' || fields[1] !== 'ElapsedTime')
    return fail('not a SIPp counts header (no CurrentTime;ElapsedTime)');
  const columns: Column[] = [];
  for (let i = 2; i < fields.length; i++) {
    const name = fields[i]!;
    if (name === '' && i === fields.length - 1) break; // the trailing ';'
    const m = COLUMN.exec(name);
    if (!m) return fail(`unknown counts column ${JSON.stringify(name.slice(0, 64))}`);
    columns.push({ field: i, element: Number(m[1]), message: m[2]!, counter: m[3]! });
  }
  const find = (pred: (c: Column) => boolean) => columns.find(pred);
  const invite = find((c) => c.message === 'INVITE' && c.counter === 'Sent');
  if (invite === undefined) return fail('no INVITE Sent column');
  const answer = find(
    (c) => c.element > invite.element && /^2[0-9][0-9]$/.test(c.message) && c.counter === 'Recv',
  );
  if (answer === undefined) return fail('no 2xx Recv column after the INVITE');
  const bye = find((c) => c.element > answer.element && c.message === 'BYE' && c.counter === 'Sent');
  if (bye === undefined) return fail('no BYE Sent column after the answer');
  const byeAnswer = columns.findLast(
    (c) => c.element > bye.element && /^2[0-9][0-9]$/.test(c.message) && c.counter === 'Recv',
  );
  if (byeAnswer === undefined) return fail('no 2xx Recv column after the BYE');
  const failures = columns.filter((c) => c.counter === 'Timeout' || c.counter === 'Unexp');
  return ok({
    attempted: invite.field,
    answered: answer.field,
    completed: byeAnswer.field,
    failedNew: failures.filter((c) => c.element <= answer.element).map((c) => c.field),
    lostEstablished: failures.filter((c) => c.element > answer.element).map((c) => c.field),
  });
}

const COUNT = /^[0-9]{1,15}$/;

/** Decodes one data line with the header's layout. */
export function parseCountsLine(layout: CountsLayout, line: string): Result<CallerCounts> {
  if (line.length > MAX_COUNTS_LINE_CHARS) return fail('line too long');
  const fields = line.replace(/\r$/, '').split(';');
  const read = (at: number): number | undefined => {
    const text = fields[at];
    return text !== undefined && COUNT.test(text) ? Number(text) : undefined;
  };
  const sum = (at: number[]): number | undefined => {
    let total = 0;
    for (const field of at) {
      const value = read(field);
      if (value === undefined) return undefined;
      total += value;
    }
    return total;
  };
  const attempted = read(layout.attempted);
  const answered = read(layout.answered);
  const completed = read(layout.completed);
  const failedNew = sum(layout.failedNew);
  const lostEstablished = sum(layout.lostEstablished);
  if (
    attempted === undefined ||
    answered === undefined ||
    completed === undefined ||
    failedNew === undefined ||
    lostEstablished === undefined
  )
    return fail('a counter is missing or not a non-negative integer');
  // Never negative, even if SIPp's counters were ever momentarily out of step with each other.
  const inProgress = Math.max(0, attempted - failedNew - completed - lostEstablished);
  return ok({ attempted, answered, failedNew, completed, lostEstablished, inProgress });
}

export interface CountsReader {
  /**
   * Feeds text as it arrives (any chunking); returns the counts of every complete data line, in
   * order, and a reason for each line that did not decode.
   */
  push(text: string): { counts: CallerCounts[]; rejected: string[] };
  /** The next text does not continue the last line (we skipped ahead in the file): drop up to a newline. */
  resync(): void;
}

/**
 * A streaming reader: the first line that decodes as a header gives the layout (SIPp writes it
 * first); data lines are decoded with it. Bounded: a partial line over MAX_COUNTS_LINE_CHARS is
 * dropped up to its newline. Never throws.
 */
export function createCountsReader(): CountsReader {
  let layout: CountsLayout | undefined;
  let partial = '';
  let skipping = false;
  return {
    resync() {
      partial = '';
      skipping = true;
    },
    push(text) {
      const counts: CallerCounts[] = [];
      const rejected: string[] = [];
      let rest = text;
      if (skipping) {
        const newline = rest.indexOf('\n');
        if (newline === -1) return { counts, rejected };
        rest = rest.slice(newline + 1);
        skipping = false;
      }
      const lines = (partial + rest).split('\n');
      partial = lines.pop() ?? '';
      if (partial.length > MAX_COUNTS_LINE_CHARS) {
        partial = '';
        skipping = true;
        rejected.push('line too long');
      }
      for (const line of lines) {
        if (line.trim() === '') continue;
        if (line.startsWith('CurrentTime;')) {
          const header = parseCountsHeader(line);
          if (header.ok) layout = header.value;
          else rejected.push(header.reason);
          continue;
        }
        if (layout === undefined) {
          rejected.push('data line before the header');
          continue;
        }
        const decoded = parseCountsLine(layout, line);
        if (decoded.ok) counts.push(decoded.value);
        else rejected.push(decoded.reason);
      }
      return { counts, rejected };
    },
  };
}

export interface LabCallerOptions {
  sippBin: string;
  /** argv run before SIPp, e.g. ['ip', 'netns', 'exec', 'sylab-caller']; [] on loopback. It must exec. */
  prefix: string[];
  /** `ip:port`: the VIP (or one backend). */
  target: string;
  localIp: string;
  localPort: number;
  /** New calls per second (fractions are fine). */
  ratePerSecond: number;
  callDurationMs: number;
  /** SIPp's -l: no new call while this many are up. */
  maxConcurrent: number;
  /** Where SIPp runs and writes its counts file (created if missing; never removed by us). */
  workDir: string;
  logger: Logger;
  /** Default DEFAULT_CALLER_SCENARIO (deploy/demo/demo-caller.xml). */
  scenarioFile?: string;
  /** setpriv's path: SIPp then gets SIGTERM when this process dies, even by SIGKILL. */
  setprivBin?: string | undefined;
  /** How often the counts file is read (default 500 ms; SIPp writes it every second). */
  pollMs?: number;
}

export interface LabCaller {
  readonly pid: number;
  /** The latest counts (SIPp writes them once a second). */
  counts(): CallerCounts;
  running(): boolean;
  /** Settles when SIPp has exited and its counts file was read to the end (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Stops placing calls (SIGUSR1, SIPp's graceful quit) and lets calls in progress end within
   * graceMs (default callDurationMs + 5000), then SIGTERM, then SIGKILL to its process group
   * after 1 s. Resolves with the final counts. Idempotent. A call whose INVITE or BYE is still
   * being retransmitted (up to ~31 s after a fault) and is cut off by the SIGTERM stays in
   * inProgress: pass graceMs >= callDurationMs + 35000 when every loss must be counted.
   */
  stop(opts?: { graceMs?: number }): Promise<CallerCounts>;
}

/**
 * SIP's transaction timeout, 64*T1 with T1 = 500 ms (RFC 3261 17.1.1.2). SIPp's own timers end
 * an unanswered INVITE or BYE after about 31 s (measured), but a recv that follows a
 * provisional response (100/180, which stop retransmission) waits forever by default: a call
 * whose backend died after its 180 would never be counted.
 */
const RECV_TIMEOUT_MS = 32_000;
const MAX_READ_BYTES = 256 * 1024;

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function invalid(message: string): SwitchyardError {
  return new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `lab caller: ${message}`);
}

function validate(opts: LabCallerOptions): void {
  const target = /^(.+):([0-9]{1,5})$/.exec(opts.target);
  if (!target || !IPV4.test(target[1]!))
    throw invalid(`target must be ipv4:port, got ${JSON.stringify(opts.target)}`);
  const ports = [Number(target[2]), opts.localPort];
  if (ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) throw invalid('bad port');
  if (!IPV4.test(opts.localIp)) throw invalid(`localIp must be IPv4, got ${JSON.stringify(opts.localIp)}`);
  if (!(opts.ratePerSecond > 0 && opts.ratePerSecond <= 1000))
    throw invalid('ratePerSecond must be in (0, 1000]');
  if (!Number.isInteger(opts.callDurationMs) || opts.callDurationMs < 0 || opts.callDurationMs > 3_600_000)
    throw invalid('callDurationMs must be an integer in [0, 3600000]');
  if (!Number.isInteger(opts.maxConcurrent) || opts.maxConcurrent < 1 || opts.maxConcurrent > 100_000)
    throw invalid('maxConcurrent must be an integer in [1, 100000]');
  if (opts.sippBin === '' || opts.prefix.some((arg) => arg === '')) throw invalid('empty argv element');
}

/** The argv: prefix (namespace), setpriv (parent-death signal), SIPp. Exported for tests and the lab's logs. */
export function labCallerCommand(opts: LabCallerOptions): string[] {
  validate(opts);
  return [
    ...opts.prefix,
    ...parentDeathPrefix('SIGTERM', opts.setprivBin),
    opts.sippBin,
    ...sippUacArgs({ ...opts, scenarioFile: opts.scenarioFile ?? DEFAULT_CALLER_SCENARIO }),
    '-recv_timeout',
    String(RECV_TIMEOUT_MS),
    '-trace_counts',
    '-fd',
    '1',
  ];
}

/**
 * Tails SIPp's counts file: finds it (by SIPp's pid, or the newest one written since we started,
 * in case the prefix forked), reads what was appended since the last poll. Bounded: when more
 * than MAX_READ_BYTES piled up, it jumps to the tail (only the last line matters).
 */
function createCountsTail(workDir: string, scenarioBase: string, pid: number, startedAtMs: number) {
  const reader = createCountsReader();
  const pattern = new RegExp(`^${scenarioBase.replace(/[^A-Za-z0-9]/g, '\\$&')}_([0-9]+)_counts\\.csv$`);
  let path: string | undefined;
  let offset = 0;
  let headerSeen = false;

  async function locate(): Promise<string | undefined> {
    const own = join(workDir, `${scenarioBase}_${pid}_counts.csv`);
    try {
      await stat(own);
      return own;
    } catch {
      // not (yet) there under SIPp's pid: look for one written since we started
    }
    let newest: { path: string; mtimeMs: number } | undefined;
    for (const name of await readdir(workDir).catch(() => [] as string[])) {
      if (!pattern.test(name)) continue;
      const s = await stat(join(workDir, name)).catch(() => undefined);
      if (s === undefined || s.mtimeMs < startedAtMs - 1000) continue;
      if (newest === undefined || s.mtimeMs > newest.mtimeMs)
        newest = { path: join(workDir, name), mtimeMs: s.mtimeMs };
    }
    return newest?.path;
  }

  return {
    fileName: () => path,
    /** Reads what is new; returns the latest counts in it (undefined if none) and rejected reasons. */
    async poll(): Promise<{ latest: CallerCounts | undefined; rejected: string[] }> {
      path ??= await locate();
      if (path === undefined) return { latest: undefined, rejected: [] };
      const fh = await open(path, 'r').catch(() => undefined);
      if (fh === undefined) return { latest: undefined, rejected: [] };
      try {
        const { size } = await fh.stat();
        if (size < offset) {
          // Truncated or replaced: start over.
          offset = 0;
          reader.resync();
        }
        // Keep the header: it is read on the first poll, before any skipping can happen.
        if (headerSeen && size - offset > MAX_READ_BYTES) {
          offset = size - MAX_READ_BYTES;
          reader.resync();
        }
        const length = Math.min(size - offset, MAX_READ_BYTES);
        if (length <= 0) return { latest: undefined, rejected: [] };
        const buf = Buffer.alloc(length);
        const { bytesRead } = await fh.read(buf, 0, length, offset);
        offset += bytesRead;
        headerSeen = true;
        const { counts, rejected } = reader.push(buf.subarray(0, bytesRead).toString('latin1'));
        return { latest: counts.at(-1), rejected };
      } finally {
        await fh.close();
      }
    },
  };
}

/** Starts SIPp as the lab's caller and follows its per-message counters. */
export async function startLabCaller(opts: LabCallerOptions): Promise<LabCaller> {
  const argv = labCallerCommand(opts);
  const log = opts.logger.child({ component: 'lab-caller' });
  const scenarioBase = basename(opts.scenarioFile ?? DEFAULT_CALLER_SCENARIO).replace(/\.xml$/, '');
  await mkdir(opts.workDir, { recursive: true });
  const startedAtMs = Date.now();
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), {
    cwd: opts.workDir,
    stdio: ['ignore', 'pipe', 'pipe'],
    // A group of its own: a Ctrl-C meant for the lab reaches SIPp only through stop().
    detached: true,
    shell: false,
  });
  const spawnError = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', resolve);
  });
  if (spawnError !== undefined || child.pid === undefined)
    throw invalid(`cannot start ${argv[0]}: ${spawnError?.message ?? 'no pid'}`);
  const pid = child.pid;

  let alive = true;
  let stopping = false;
  let latest: CallerCounts = { ...ZERO_COUNTS };
  let rejectedLines = 0;
  const tail = createCountsTail(opts.workDir, scenarioBase, pid, startedAtMs);

  // One poll at a time: a slow disk must not interleave two reads of the same offset.
  let polling: Promise<void> = Promise.resolve();
  const poll = (): Promise<void> => {
    polling = polling.then(async () => {
      try {
        const { latest: fresh, rejected } = await tail.poll();
        for (const reason of rejected) {
          rejectedLines++;
          if (rejectedLines === 1) log.warn({ reason }, 'SIPp counts line not understood');
          else log.debug({ reason, rejectedLines }, 'SIPp counts line not understood');
        }
        if (fresh !== undefined) latest = fresh;
      } catch (err) {
        log.warn({ err: String(err) }, 'cannot read the SIPp counts file');
      }
    });
    return polling;
  };
  const timer = setInterval(() => void poll(), opts.pollMs ?? 500);

  forwardLines(child.stdout, (line) => log.debug({ stream: 'stdout', pid }, line));
  forwardLines(child.stderr, (line) => log.info({ stream: 'stderr', pid }, line));

  const killOnExit = () => {
    if (alive) signalGroup(pid, 'SIGKILL');
  };
  process.once('exit', killOnExit);

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      alive = false;
      process.off('exit', killOnExit);
      clearInterval(timer);
      // SIPp writes its last counts line at exit: read the file to its end before reporting.
      void poll().then(() => {
        const fields = { pid, code, signal, countsFile: tail.fileName(), ...latest };
        if (stopping) log.info(fields, 'lab caller stopped');
        else log.warn(fields, 'lab caller exited on its own');
        resolve({ code, signal });
      });
    });
  });

  log.info({ pid, argv }, 'lab caller started');

  let stopped: Promise<CallerCounts> | undefined;
  const stop = (stopOpts: { graceMs?: number } = {}): Promise<CallerCounts> => {
    stopped ??= (async () => {
      stopping = true;
      const graceMs = stopOpts.graceMs ?? opts.callDurationMs + 5000;
      await stopSippUac({ pid, exited, alive: () => alive, graceMs, log, context: () => ({ ...latest }) });
      // Calls SIGTERM cut off were neither completed nor lost as far as SIPp knows: say so, the
      // report would otherwise understate losses. A grace of callDurationMs + ~35 s lets every
      // retransmitting INVITE or BYE reach its verdict.
      if (latest.inProgress > 0)
        log.warn(
          { pid, inProgress: latest.inProgress, graceMs },
          'calls cut off at stop: not counted as lost',
        );
      return { ...latest };
    })();
    return stopped;
  };

  return {
    pid,
    counts: () => ({ ...latest }),
    running: () => alive,
    exited,
    stop,
  };
}

import { spawn } from 'node:child_process';
import { type FindExecutableOptions, findExecutable } from '../core/executables.ts';

/**
 * The programs the demo needs, where they are, and how to install the missing ones. Debian names
 * them differently from their binaries (SIPp is the `sip-tester` package), so the map is fixed
 * here and only its values ever reach apt-get's argv: nothing typed by a user does.
 */

export const PREREQUISITE_PACKAGES = {
  kamailio: 'kamailio',
  sipp: 'sip-tester',
} as const;

export type Prerequisite = keyof typeof PREREQUISITE_PACKAGES;

export interface PrerequisiteStatus {
  found: { name: Prerequisite; path: string }[];
  missing: Prerequisite[];
}

export interface CheckPrerequisitesOptions extends FindExecutableOptions {
  needs: readonly Prerequisite[];
}

/** Which of `needs` are installed, and where. */
export function checkPrerequisites(opts: CheckPrerequisitesOptions): PrerequisiteStatus {
  const status: PrerequisiteStatus = { found: [], missing: [] };
  for (const name of new Set(opts.needs)) {
    if (!Object.hasOwn(PREREQUISITE_PACKAGES, name)) throw new TypeError(`unknown prerequisite ${name}`);
    const path = findExecutable(name, opts);
    if (path === undefined) status.missing.push(name);
    else status.found.push({ name, path });
  }
  return status;
}

/** What the user runs by hand: `sudo apt-get install -y kamailio sip-tester`. */
export function manualInstallCommand(missing: readonly Prerequisite[]): string[] {
  return ['sudo', 'apt-get', 'install', '-y', ...packagesFor(missing)];
}

function packagesFor(missing: readonly Prerequisite[]): string[] {
  return [...new Set(missing)].map((name) => {
    if (!Object.hasOwn(PREREQUISITE_PACKAGES, name)) throw new TypeError(`unknown prerequisite ${name}`);
    return PREREQUISITE_PACKAGES[name];
  });
}

export type InstallOutcome =
  | { kind: 'nothing-to-do' }
  | { kind: 'installed'; packages: string[] }
  /** `command` is the apt-get argv that failed. */
  | { kind: 'failed'; packages: string[]; reason: string; command: string[] }
  | { kind: 'manual'; reason: 'not-root' | 'no-apt-get'; command: string[]; commandLine: string };

export interface InstallOptions extends FindExecutableOptions {
  /** Every line apt-get prints, as it prints it. */
  onProgress?: (line: string) => void;
  /** Default: the effective uid is 0. */
  isRoot?: boolean;
  /** Each apt-get run is killed after this long (default 10 minutes). */
  stepTimeoutMs?: number;
}

/**
 * Installs the missing prerequisites with apt-get when that can work without asking (root, apt-get
 * present); otherwise returns the command for the user to run. `apt-get update` runs only when the
 * install failed for want of package lists (a fresh container has none), since it is slow and
 * needs the network.
 */
export async function installPrerequisites(
  missing: readonly Prerequisite[],
  opts: InstallOptions = {},
): Promise<InstallOutcome> {
  const packages = packagesFor(missing);
  if (packages.length === 0) return { kind: 'nothing-to-do' };
  const command = manualInstallCommand(missing);
  const manual = (reason: 'not-root' | 'no-apt-get'): InstallOutcome => ({
    kind: 'manual',
    reason,
    command,
    commandLine: command.join(' '),
  });
  const isRoot = opts.isRoot ?? process.geteuid?.() === 0;
  if (!isRoot) return manual('not-root');
  const aptGet = findExecutable('apt-get', opts);
  if (aptGet === undefined) return manual('no-apt-get');

  const onProgress = opts.onProgress ?? (() => {});
  const timeoutMs = opts.stepTimeoutMs ?? 10 * 60_000;
  const installArgs = ['install', '-y', '--no-install-recommends', ...packages];
  let first = await runApt(aptGet, installArgs, onProgress, timeoutMs);
  if (first.code === 0) return { kind: 'installed', packages };
  if (!first.needsUpdate)
    return { kind: 'failed', packages, reason: first.reason, command: [aptGet, ...installArgs] };
  onProgress('package lists missing or stale: running apt-get update');
  const update = await runApt(aptGet, ['update'], onProgress, timeoutMs);
  if (update.code !== 0)
    return { kind: 'failed', packages, reason: update.reason, command: [aptGet, 'update'] };
  first = await runApt(aptGet, installArgs, onProgress, timeoutMs);
  if (first.code === 0) return { kind: 'installed', packages };
  return { kind: 'failed', packages, reason: first.reason, command: [aptGet, ...installArgs] };
}

/** apt-get's messages when it does not know a package: its lists are missing or out of date. */
const NEEDS_UPDATE = /Unable to locate package|has no installation candidate|Failed to fetch .*404/;

interface AptRun {
  code: number | null;
  needsUpdate: boolean;
  reason: string;
}

function runApt(
  aptGet: string,
  args: string[],
  onProgress: (line: string) => void,
  timeoutMs: number,
): Promise<AptRun> {
  return new Promise((resolve) => {
    let needsUpdate = false;
    let lastLine = '';
    const child = spawn(aptGet, args, {
      // Debconf must not wait for answers on a terminal nobody watches.
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: false,
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const forward = (stream: NodeJS.ReadableStream) => {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (text: string) => {
        const lines = (partial + text).split('\n');
        partial = (lines.pop() ?? '').slice(-4096);
        for (const line of lines) emit(line);
      });
      stream.on('end', () => emit(partial));
    };
    const emit = (line: string) => {
      const clean = line.replace(/\r/g, '').trimEnd();
      if (clean === '') return;
      if (NEEDS_UPDATE.test(clean)) needsUpdate = true;
      lastLine = clean;
      try {
        onProgress(clean);
      } catch {
        // A progress listener's bug must not stop the install.
      }
    };
    if (child.stdout) forward(child.stdout);
    if (child.stderr) forward(child.stderr);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, needsUpdate: false, reason: `cannot run apt-get: ${err.message}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const reason =
        code === 0
          ? ''
          : signal === 'SIGKILL'
            ? `apt-get ${args[0]} timed out after ${timeoutMs} ms`
            : `apt-get ${args[0]} exited with ${code ?? signal}: ${lastLine}`;
      resolve({ code, needsUpdate, reason });
    });
  });
}

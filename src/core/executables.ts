import { spawnSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/** Finding the programs switchyard runs, and running them so that they die with their parent. */

/**
 * Searched after PATH: Kamailio installs into /usr/sbin, which a normal user's PATH (and some
 * service managers') does not include.
 */
export const SYSTEM_BIN_DIRS = [
  '/usr/local/sbin',
  '/usr/local/bin',
  '/usr/sbin',
  '/usr/bin',
  '/sbin',
  '/bin',
];

export interface FindExecutableOptions {
  /** A PATH-style list searched first. The config loader owns the environment: pass it in. */
  pathEnv?: string | undefined;
  /** Searched after pathEnv (default SYSTEM_BIN_DIRS; tests pass their own). */
  systemDirs?: readonly string[] | undefined;
}

/** The first executable regular file called `name` on pathEnv, then in the system dirs. */
export function findExecutable(name: string, opts: FindExecutableOptions = {}): string | undefined {
  if (name === '' || name.includes('/'))
    throw new TypeError(`findExecutable: bare name expected, got ${name}`);
  // Relative PATH entries would depend on the cwd: skipped.
  const fromPath = (opts.pathEnv ?? '').split(delimiter).filter((dir) => dir !== '' && isAbsolute(dir));
  for (const dir of [...fromPath, ...(opts.systemDirs ?? SYSTEM_BIN_DIRS)]) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * The argv prefix that makes the kernel send `signal` to a child when its parent (this process)
 * dies, even by SIGKILL: util-linux's setpriv sets PR_SET_PDEATHSIG and then execs, so the pid
 * stays the child's own. Without it, a child in a process group of its own outlives a killed
 * parent and holds its ports against the next start. Empty when setpriv is not installed.
 */
export function parentDeathPrefix(
  signal: 'SIGTERM' | 'SIGKILL',
  /** setprivWithPdeathsig(), or a path given by a test. */
  setprivBin: string | undefined,
): string[] {
  return setprivBin === undefined ? [] : [setprivBin, '--pdeathsig', signal];
}

let pdeathsigSetprivCache: string | null | undefined;

/**
 * setpriv's path when it has `--pdeathsig` (util-linux 2.33 and later; Debian 12 has 2.38),
 * undefined otherwise. An older setpriv would refuse the option and the service would never
 * start, so it is tried once (`setpriv --pdeathsig SIGTERM -- true`) and the answer kept.
 */
export function setprivWithPdeathsig(): string | undefined {
  if (pdeathsigSetprivCache === undefined) {
    const bin = findExecutable('setpriv');
    const trueBin = findExecutable('true');
    pdeathsigSetprivCache =
      bin !== undefined &&
      trueBin !== undefined &&
      spawnSync(bin, ['--pdeathsig', 'SIGTERM', '--', trueBin], { stdio: 'ignore', timeout: 5000 }).status ===
        0
        ? bin
        : null;
  }
  return pdeathsigSetprivCache ?? undefined;
}

/** A user and group for the supervised service, by name or number. */
export interface RunAs {
  user: string;
  group: string;
}

/** What a user or group may be: a POSIX-ish name or a number; nothing setpriv could read as an option. */
export const ACCOUNT_NAME = /^(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|\d{1,10})$/;

/**
 * The setpriv argv prefix that runs a service as `runAs` (supplementary groups from the user's
 * entry) and/or with a parent-death signal. One setpriv does both, and it sets the signal after
 * changing the credentials: the kernel clears a parent-death signal on any uid or gid change, so
 * an Asterisk that drops to its user by itself (`-U asterisk`) loses it, while one started as
 * that user keeps it. Empty when neither is asked for.
 */
export function supervisionPrefix(
  opts: { parentDeathSignal?: 'SIGTERM' | 'SIGKILL' | undefined; runAs?: RunAs | undefined },
  /** setprivWithPdeathsig(), or a path given by a test. */
  setprivBin: string | undefined,
): string[] {
  if (opts.runAs === undefined) {
    return opts.parentDeathSignal === undefined ? [] : parentDeathPrefix(opts.parentDeathSignal, setprivBin);
  }
  const { user, group } = opts.runAs;
  for (const name of [user, group])
    if (!ACCOUNT_NAME.test(name))
      throw new TypeError(`supervisionPrefix: bad user or group ${JSON.stringify(name)}`);
  if (setprivBin === undefined) throw new TypeError('supervisionPrefix: runAs needs setpriv');
  return [
    setprivBin,
    `--reuid=${user}`,
    `--regid=${group}`,
    '--init-groups',
    ...(opts.parentDeathSignal === undefined ? [] : ['--pdeathsig', opts.parentDeathSignal]),
    '--',
  ];
}

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
  /** findExecutable('setpriv'), or a path given by a test. */
  setprivBin: string | undefined,
): string[] {
  return setprivBin === undefined ? [] : [setprivBin, '--pdeathsig', signal];
}

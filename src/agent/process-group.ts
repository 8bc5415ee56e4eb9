import type { ChildProcess } from 'node:child_process';

/**
 * Children are spawned with `detached: true`, which on POSIX makes each one the leader of a new
 * session and process group whose id is its pid. Signalling `-pid` then reaches everything it
 * started (Asterisk's AGI scripts, a hook's `sleep`), which signalling the pid alone would
 * leave behind.
 */

/** Whether the child has not exited yet (it still owns its pid, so its group id is ours). */
export function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/**
 * Sends `signal` to the child's whole process group, or to the child alone. Only while the
 * child has not been reaped: afterwards its pid (and so the group id) may belong to someone else.
 * Returns whether the signal was delivered.
 */
export function signalChild(child: ChildProcess, signal: NodeJS.Signals, wholeGroup = true): boolean {
  const pid = child.pid;
  if (pid === undefined || !isRunning(child)) return false;
  try {
    process.kill(wholeGroup ? -pid : pid, signal);
    return true;
  } catch {
    // ESRCH: it exited between the check and the kill.
    return false;
  }
}

/**
 * SIGKILLs whatever is left in the process group of a child that has just exited (its
 * children, orphaned). Called from the exit event at once: while any member lives, the group id
 * cannot be handed to a new process, and with none left the kill finds nothing (ESRCH).
 * Returns whether anything was there to kill.
 */
export function killLeftoverGroup(pid: number): boolean {
  try {
    process.kill(-pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

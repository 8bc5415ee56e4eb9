import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../core/atomic-file.ts';
import { SwitchyardError } from '../core/errors.ts';

/** The file's current text, or undefined when it does not exist yet. */
export async function readListFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SwitchyardError('SY_ERR_LIST_FILE_WRITE', `cannot read ${path}: ${(err as Error).message}`, {
      retryable: true,
      cause: err,
    });
  }
}

/**
 * Atomic replace: write a temp file in the same directory, fsync, rename over the target.
 * Kamailio (or an operator's inotify watcher) never sees a half-written list, unlike the
 * original sidecar's truncate-and-write (research/seed-systems.md §1).
 */
export async function writeListFileAtomic(path: string, text: string): Promise<void> {
  try {
    await writeFileAtomic(path, text, { mode: 0o644 });
  } catch (err) {
    throw new SwitchyardError('SY_ERR_LIST_FILE_WRITE', `cannot write ${path}: ${(err as Error).message}`, {
      retryable: true,
      cause: err,
    });
  }
}

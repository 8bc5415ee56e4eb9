import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
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
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true });
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {
      // the temp file may never have been created
    });
    throw new SwitchyardError('SY_ERR_LIST_FILE_WRITE', `cannot write ${path}: ${(err as Error).message}`, {
      retryable: true,
      cause: err,
    });
  }
}

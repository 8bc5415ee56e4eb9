import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface WriteFileAtomicOptions {
  /** Permissions of the file, applied with chmod so the umask cannot narrow or widen them. */
  mode: number;
  /**
   * Also fsync the directory, so that the rename itself survives a power cut. Worth it for
   * files whose presence is a decision (the first-boot marker), not for files rewritten on
   * every start anyway.
   */
  syncDirectory?: boolean;
}

/**
 * Replaces `path` atomically: a temp file in the same directory (rename is atomic only within
 * one file system), fsynced, then renamed over the target. A reader (Asterisk, an operator)
 * sees the old file or the new one, never half of one. Throws the underlying I/O error; callers
 * wrap it in their own error code.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  opts: WriteFileAtomicOptions,
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true });
    // 'wx': never follow or reuse something already at the temp name.
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.chmod(opts.mode);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {
      // the temp file may never have been created, or was already renamed
    });
    throw err;
  }
  if (opts.syncDirectory) {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }
}

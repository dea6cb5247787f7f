/**
 * Crash-safe file replacement, used for every file mbrl-node writes (buffer segments and
 * manifests, checkpoints).
 */
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Matches the temporary files `writeFileAtomic` leaves behind only if the process dies mid-write. */
export const TEMP_FILE_PATTERN = /\.tmp-\d+-\d+$/;

let tempCounter = 0;

/**
 * Writes `data` to `path` so that a reader (or a restart after a crash or power loss) sees
 * either the old file or the complete new one, never a mix:
 * write `<path>.tmp-<pid>-<n>`, fsync it, rename it over `path` (atomic on POSIX file systems),
 * then fsync the directory so that the rename itself is durable.
 *
 * On failure the temporary file is removed and the error rethrown; `path` is untouched.
 * The directory must exist.
 *
 * @param data bytes, or a string written as UTF-8
 * @example await writeFileAtomic('/data/run1/manifest.json', JSON.stringify(manifest));
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dirname(path), `${basename(path)}.tmp-${process.pid}-${tempCounter++}`);
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dirname(path));
}

/**
 * Flushes a directory's entries (the rename) to disk. Some platforms (Windows) and file
 * systems cannot open or fsync a directory; there the rename's durability is the OS's.
 */
async function syncDirectory(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES' && code !== 'ENOTSUP') throw err;
  } finally {
    await fh?.close();
  }
}

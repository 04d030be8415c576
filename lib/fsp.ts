// Promise forms of the node:fs calls dist uses, over the callback API. node:fs/promises costs
// ~2 ms to load (it pulls in readline, file streams and more: profiled in a 32 KiB dist
// ingest), which every process that touched the store paid; the callback API is in node:fs,
// loaded already. Same arguments, results and errors as node:fs/promises.
// Also the small file-system steps the store, the build cache and login share: mkdir -p,
// atomic writes of small files, and fsync of a directory.
import * as fs from 'node:fs';
import { dirname } from 'node:path';

type Fsp = typeof fs.promises;

function viaCallback<K extends keyof Fsp & keyof typeof fs>(name: K): Fsp[K] {
  const fn = fs[name] as (...args: unknown[]) => void;
  return ((...args: unknown[]) =>
    new Promise((resolve, reject) => fn(...args, (err: Error | null, value: unknown) => (err ? reject(err) : resolve(value))))) as Fsp[K];
}

export const link = viaCallback('link');
export const mkdir = viaCallback('mkdir');
export const readFile = viaCallback('readFile');
export const readdir = viaCallback('readdir');
export const rename = viaCallback('rename');
export const rm = viaCallback('rm');
export const stat = viaCallback('stat');
export const unlink = viaCallback('unlink');
export const writeFile = viaCallback('writeFile');

/**
 * mkdir -p, synchronously (a few metadata calls). Node's `{ recursive: true }` never returns
 * where mkdir(2) answers ENOENT under a parent that exists, as in /proc or /sys: `dist --root
 * /proc/x pull` spun at full CPU forever. This makes each missing parent once, then fails
 * with mkdir(2)'s own error. Each directory it makes gets `mode` (before the umask), as
 * `{ recursive: true, mode }` would give.
 */
export function mkdirp(path: string, mode?: number): void {
  const parent = dirname(path);
  try {
    fs.mkdirSync(path, mode);
    return;
  } catch (err) {
    if (existsAsDir(err, path)) return;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === path) throw err;
  }
  mkdirp(parent, mode);
  try {
    fs.mkdirSync(path, mode);
  } catch (err) {
    if (!existsAsDir(err, path)) throw err;
  }
}

/** mkdir failed with EEXIST on a directory (made meanwhile, or there all along). */
function existsAsDir(err: unknown, path: string): boolean {
  if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return false;
  try {
    return fs.statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** A fresh name beside `path` for a file written then renamed or linked into place. */
export function tempName(path: string): string {
  return `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
}

/**
 * Writes a small file atomically: temp file, fsync, rename, fsync of the directory. Without
 * the last step a power cut can undo the rename, and index.json would lose a name whose
 * blobs are durable. The temp file is created with `mode` (before the umask), so a file of
 * secrets (login's config.json, 0600) is never readable by others, even for a moment; it is
 * removed again when the write or the rename fails.
 */
export async function writeFileAtomic(path: string, text: string, mode = 0o666): Promise<void> {
  const tmp = tempName(path);
  try {
    // 'wx': the name is fresh; a file found there anyway would keep its own mode.
    await writeFile(tmp, text, { flush: true, mode, flag: 'wx' });
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  fsyncDir(dirname(path));
}

/** fsyncs a directory, making the renames into it durable. */
export function fsyncDir(path: string): void {
  const fd = fs.openSync(path, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

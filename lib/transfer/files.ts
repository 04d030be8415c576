import { createReadStream, createWriteStream } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { readFile, rename, unlink } from '../fsp.js';
import { parseDigest } from '../digest.js';
import { DistError, sysCode } from '../errors.js';

/**
 * Runs `write` into `target`: a stream as it is, or a file written under a temp name and
 * renamed into place once complete, so a failed export never leaves a half archive behind.
 */
export async function exportTo<T>(target: Writable | string, write: (out: Writable) => Promise<T>): Promise<T> {
  if (typeof target !== 'string') return write(target);
  const tmp = `${target}.tmp-${process.pid}`;
  try {
    const result = await write(createWriteStream(tmp, { flush: true } as object));
    await rename(tmp, target);
    return result;
  } catch (err) {
    await unlink(tmp).catch(() => {});
    if (err instanceof DistError) throw err;
    if (sysCode(err)) throw new DistError('EIO', `writing ${target}: ${(err as Error).message}`, { cause: err });
    throw err;
  }
}

/** The digests listed in FILE (whitespace-separated, as `dist list -q` prints). Errors: ENOENT, EINVAL. */
export async function readExcludes(file: string): Promise<Set<string>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new DistError(sysCode(err) === 'ENOENT' ? 'ENOENT' : 'EIO', `--exclude-from ${file}: ${(err as Error).message}`);
  }
  const digests = new Set<string>();
  for (const word of text.split(/\s+/)) if (word) digests.add(parseDigest(word).text);
  return digests;
}

/** An archive file opened for reading (opened before anything else happens: ENOENT comes first). */
export async function openArchive(file: string): Promise<Readable> {
  const stream = createReadStream(file, { highWaterMark: 1 << 20 });
  await new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', (err) => reject(new DistError(sysCode(err) === 'ENOENT' ? 'ENOENT' : 'EIO', `${file}: ${err.message}`)));
  });
  return stream;
}

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as TarStream from 'tar-stream';
import { DistError } from '../errors.js';

const require = createRequire(import.meta.url);

/**
 * The tar-stream release this patch was written against, pinned exactly in package.json.
 * tar-stream's public API hands over PAX records only as decoded text (`header.pax`), decoded
 * as UTF-8, and neither the record bytes nor the raw header blocks: so a binary xattr value
 * (`SCHILY.xattr.security.capability`) or a non-UTF-8 `path` would reach dist as U+FFFD. There
 * being no public way to get the bytes, the decoder of PAX records is swapped for one that
 * keeps every byte, and the swap checks itself when loaded (below).
 */
export const TAR_STREAM_VERSION = '3.2.2';

/**
 * tar-stream, with its PAX record decoder switched from UTF-8 to latin1 so that every byte
 * of a record survives. Names everywhere are then "byte strings" (one char per byte), matching
 * `filenameEncoding: 'latin1'` for ustar and GNU long names; they become file system paths
 * through Buffer.from(name, 'latin1').
 *
 * Errors: EINVAL, one line, when the installed tar-stream is not the pinned release or no
 * longer decodes PAX records through `headers.decodePax`: then the patch could silently miss,
 * and layers would be applied with mangled names and capabilities.
 */
function load(): typeof TarStream {
  const main = require.resolve('tar-stream');
  const dir = dirname(main);
  const { version } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string };
  const extractSource = readFileSync(join(dir, 'extract.js'), 'utf8');
  const headers = require(join(dir, 'headers.js')) as { decodePax?: (buf: Buffer) => Record<string, string> };
  if (version !== TAR_STREAM_VERSION || typeof headers.decodePax !== 'function' || !extractSource.includes('headers.decodePax(buf)')) {
    throw new DistError('EINVAL', `tar-stream ${version} is installed, but dist needs exactly ${TAR_STREAM_VERSION} to read PAX records byte for byte; reinstall dist`);
  }
  headers.decodePax = decodePaxBytes;
  return require('tar-stream');
}

/** PAX extended header records: `<len> <key>=<value>\n`, decoded byte for byte. */
export function decodePaxBytes(buf: Buffer): Record<string, string> {
  const result: Record<string, string> = {};
  let rest = buf;
  while (rest.length) {
    let i = 0;
    while (i < rest.length && rest[i] !== 0x20) i++;
    const len = parseInt(rest.subarray(0, i).toString('latin1'), 10);
    if (!len || len > rest.length || len <= i + 1) return result;
    const record = rest.subarray(i + 1, len - 1).toString('latin1');
    const eq = record.indexOf('=');
    if (eq === -1) return result;
    result[record.slice(0, eq)] = record.slice(eq + 1);
    rest = rest.subarray(len);
  }
  return result;
}

export const tar = load();

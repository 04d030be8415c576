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
 * keeps every byte, and the encoder (which writes UTF-8) for one that writes byte strings as
 * their bytes; the swap checks itself when loaded (below).
 */
export const TAR_STREAM_VERSION = '3.2.2';

/**
 * tar-stream, with its PAX record decoder switched from UTF-8 to latin1 so that every byte
 * of a record survives. Names everywhere are then "byte strings" (one char per byte), matching
 * `filenameEncoding: 'latin1'` for ustar and GNU long names; they become file system paths
 * through Buffer.from(name, 'latin1').
 *
 * Errors: EINVAL, one line, when the installed tar-stream is not the pinned release or no
 * longer decodes and encodes PAX records through `headers.decodePax`/`encodePax`: then the
 * patch could silently miss,
 * and layers would be applied with mangled names and capabilities.
 */
function load(): typeof TarStream {
  const main = require.resolve('tar-stream');
  const dir = dirname(main);
  const { version } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string };
  const extractSource = readFileSync(join(dir, 'extract.js'), 'utf8');
  const packSource = readFileSync(join(dir, 'pack.js'), 'utf8');
  const headers = require(join(dir, 'headers.js')) as {
    decodePax?(buf: Buffer): Record<string, string>;
    encodePax?(opts: { name?: string; linkname?: string | null; pax?: Record<string, string> | null }): Buffer;
  };
  if (
    version !== TAR_STREAM_VERSION ||
    typeof headers.decodePax !== 'function' ||
    typeof headers.encodePax !== 'function' ||
    !extractSource.includes('headers.decodePax(buf)') ||
    !packSource.includes('headers.encodePax(')
  ) {
    throw new DistError('EINVAL', `tar-stream ${version} is installed, but dist needs exactly ${TAR_STREAM_VERSION} to read and write PAX records byte for byte; reinstall dist`);
  }
  headers.decodePax = decodePaxBytes;
  headers.encodePax = encodePaxBytes;
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

/**
 * PAX records written byte for byte (the inverse of decodePaxBytes): `path`, `linkpath` and
 * every `pax` record are latin1 byte strings, and each record's length counts bytes, where
 * tar-stream's own encoder counts UTF-16 units and writes UTF-8 (so a non-ASCII name or a
 * binary xattr would be corrupted).
 */
function encodePaxBytes(opts: { name?: string; linkname?: string | null; pax?: Record<string, string> | null }): Buffer {
  const records: Buffer[] = [];
  const add = (key: string, value: string) => {
    const body = Buffer.from(` ${key}=${value}\n`, 'latin1');
    // The length prefix counts itself: grow it until it is stable.
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    records.push(Buffer.from(String(len), 'latin1'), body);
  };
  if (opts.name) add('path', opts.name);
  if (opts.linkname) add('linkpath', opts.linkname);
  for (const [k, v] of Object.entries(opts.pax ?? {})) add(k, v);
  return Buffer.concat(records);
}

export const tar = load();

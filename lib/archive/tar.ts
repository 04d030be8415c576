import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as TarStream from 'tar-stream';

const require = createRequire(import.meta.url);

/**
 * tar-stream, with its PAX record decoder switched from UTF-8 to latin1 so that every byte
 * of a record survives: binary xattr values (`SCHILY.xattr.security.capability`) and non-UTF-8
 * `path`/`linkpath` records would otherwise be replaced by U+FFFD. Names everywhere are then
 * "byte strings" (one char per byte), matching `filenameEncoding: 'latin1'` for ustar and GNU
 * long names; they become file system paths through Buffer.from(name, 'latin1').
 */
function load(): typeof TarStream {
  const main = require.resolve('tar-stream');
  const headers = require(join(dirname(main), 'headers.js')) as {
    decodePax(buf: Buffer): Record<string, string>;
    encodePax(opts: { name?: string; linkname?: string | null; pax?: Record<string, string> | null }): Buffer;
  };
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
export function encodePaxBytes(opts: { name?: string; linkname?: string | null; pax?: Record<string, string> | null }): Buffer {
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

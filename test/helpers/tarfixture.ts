import { gzipSync } from 'node:zlib';

/** One entry of a hand-made tar. Names and link names may be raw bytes. */
export interface TarEntry {
  name: string | Buffer;
  type?: 'file' | 'dir' | 'symlink' | 'link' | 'char' | 'block' | 'fifo' | 'contiguous' | 'x' | 'raw';
  /** Raw typeflag byte, for unknown types. */
  typeflag?: string;
  data?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string | Buffer;
  devmajor?: number;
  devminor?: number;
  /** Extra PAX records (values may be raw bytes). */
  pax?: Record<string, string | Buffer>;
}

const FLAGS: Record<string, string> = { file: '0', dir: '5', symlink: '2', link: '1', char: '3', block: '4', fifo: '6', contiguous: '7', x: 'x' };

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

function header(e: TarEntry, size: number, name: Buffer, linkname: Buffer): Buffer {
  const h = Buffer.alloc(512);
  name.copy(h, 0, 0, Math.min(100, name.length));
  h.write(octal(e.mode ?? (e.type === 'dir' ? 0o755 : e.type === 'symlink' || e.type === 'link' ? 0o777 : 0o644), 8), 100, 'ascii');
  h.write(octal(e.uid ?? 0, 8), 108, 'ascii');
  h.write(octal(e.gid ?? 0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(e.mtime ?? 1_700_000_000, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(e.typeflag ?? FLAGS[e.type ?? 'file']!, 156, 'latin1');
  linkname.copy(h, 157, 0, Math.min(100, linkname.length));
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(octal(e.devmajor ?? 0, 8), 329, 'ascii');
  h.write(octal(e.devminor ?? 0, 8), 337, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

function pad(b: Buffer): Buffer {
  const rem = b.length % 512;
  return rem ? Buffer.concat([b, Buffer.alloc(512 - rem)]) : b;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** Builds a tar byte for byte. Names over 100 bytes go into a PAX `path` record. */
export function makeTar(entries: TarEntry[], opts: { end?: boolean } = {}): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const name = Buffer.isBuffer(e.name) ? e.name : Buffer.from(e.name, 'utf8');
    const linkname = e.linkname === undefined ? Buffer.alloc(0) : Buffer.isBuffer(e.linkname) ? e.linkname : Buffer.from(e.linkname, 'utf8');
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data);
    const records: Buffer[] = [];
    if (name.length > 100) records.push(paxRecord('path', name));
    if (linkname.length > 100) records.push(paxRecord('linkpath', linkname));
    for (const [k, v] of Object.entries(e.pax ?? {})) records.push(paxRecord(k, Buffer.isBuffer(v) ? v : Buffer.from(v)));
    if (records.length) {
      const body = Buffer.concat(records);
      out.push(header({ name: 'PaxHeader', type: 'x' }, body.length, Buffer.from('PaxHeader'), Buffer.alloc(0)), pad(body));
    }
    out.push(header(e, data.length, name, linkname), pad(data));
  }
  if (opts.end !== false) out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

export const gz = (b: Buffer) => gzipSync(b);

/** Recomputes the checksum of the 512-byte header at `offset` after a test edited its fields. */
export function fixChecksum(tar: Buffer, offset = 0): Buffer {
  const h = tar.subarray(offset, offset + 512);
  h.write('        ', 148, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return tar;
}

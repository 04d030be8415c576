import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import { readXattrs } from '../../lib/archive/xattrs.js';
import type { ObservedEntry } from './rootfs.js';

/** What the diff law compares, per path: type, mode, owner, size, content, link target, rdev, hardlink group, xattrs, file mtime (s). */
export interface LawEntry extends ObservedEntry {
  mode: number;
  links?: string;
  xattrs?: Record<string, string>;
}

/** Every path under root (latin1 names) with what the law compares. Hardlink groups as the sorted list of their paths. */
export function lawTree(root: string): Map<string, LawEntry> {
  const out = new Map<string, LawEntry>();
  const inodes = new Map<number, string[]>();
  const xattrs = readXattrs(root);
  const walk = (rel: string) => {
    const dir = Buffer.from(rel ? `${root}/${rel}` : root, 'latin1');
    for (const name of readdirSync(dir, { encoding: 'latin1' }).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = Buffer.from(`${root}/${r}`, 'latin1');
      const st = lstatSync(p);
      const e: LawEntry = { type: '?', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      if (xattrs.has(r)) e.xattrs = Object.fromEntries(Object.entries(xattrs.get(r)!).sort());
      if (st.isDirectory()) e.type = 'dir';
      else if (st.isSymbolicLink()) {
        e.type = 'symlink';
        e.target = readlinkSync(p, { encoding: 'latin1' });
        e.mode = 0;
      } else if (st.isFile()) {
        e.type = 'file';
        e.size = st.size;
        e.sha256 = hashFile(p);
        e.mtime = Math.floor(st.mtimeMs / 1000);
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        e.type = st.isCharacterDevice() ? 'char' : 'block';
        e.rdev = st.rdev;
      } else if (st.isFIFO()) e.type = 'fifo';
      else if (st.isSocket()) continue;
      if (!st.isDirectory() && st.nlink > 1) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), r]);
      out.set(r, e);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  for (const group of inodes.values()) for (const p of group) out.get(p)!.links = group.sort().join(' ');
  return out;
}

function hashFile(p: Buffer): string {
  const h = createHash('sha256');
  const fd = openSync(p, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** The paths where two trees differ, with both sides (empty when equal). */
export function treeDifferences(a: Map<string, LawEntry>, b: Map<string, LawEntry>): string[] {
  const out: string[] = [];
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    const x = JSON.stringify(a.get(k));
    const y = JSON.stringify(b.get(k));
    if (x !== y) out.push(`${k}: ${x} != ${y}`);
  }
  return out;
}

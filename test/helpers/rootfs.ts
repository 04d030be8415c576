import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/** Everything a user can observe of a tree, per path, for comparing two unpackers. */
export interface TreeEntry {
  type: string;
  mode: string;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
  rdev?: number;
  mtime?: number;
  /** Other paths sharing this inode (hardlink grouping). */
  links?: string[];
}

export function describeTree(root: string): Record<string, TreeEntry> {
  const out: Record<string, TreeEntry> = {};
  const inodes = new Map<number, string[]>();
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      const e: TreeEntry = { type: '?', mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid };
      if (st.isDirectory()) e.type = 'dir';
      else if (st.isSymbolicLink()) {
        e.type = 'symlink';
        e.target = readlinkSync(p);
        e.mode = '-';
      } else if (st.isFile()) {
        e.type = 'file';
        e.size = st.size;
        e.sha256 = createHash('sha256').update(readFileSync(p)).digest('hex');
        e.mtime = st.mtimeMs;
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        e.type = st.isCharacterDevice() ? 'char' : 'block';
        e.rdev = st.rdev;
      } else if (st.isFIFO()) e.type = 'fifo';
      if (!st.isDirectory() && st.nlink > 1) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), r]);
      out[r] = e;
      if (st.isDirectory()) walk(p, r);
    }
  };
  walk(root, '');
  for (const group of inodes.values()) for (const p of group) out[p]!.links = group.filter((q) => q !== p).sort();
  return out;
}

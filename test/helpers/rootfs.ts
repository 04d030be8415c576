import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { requireTool } from './cli.js';
import { join } from 'node:path';

/** What both tree comparisons observe of a path, whatever form they give its mode and links in. */
export interface ObservedEntry {
  type: string;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
  rdev?: number;
  mtime?: number;
}

/** Everything a user can observe of a tree, per path, for comparing two unpackers. */
export interface TreeEntry extends ObservedEntry {
  mode: string;
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

/** A real busybox-static root filesystem on disk, tarred by GNU tar: the base layer. */
export function busyboxRootfs(dir: string): Buffer {
  const busybox = requireTool('busybox');
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'root', 'tmp', 'var/lib/old', 'var/log', 'home/user', 'usr/share/doc/pkg', 'dev', 'opt/replaced-dir/sub']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(busybox, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  const applets = execFileSync(busybox, ['--list-full'], { encoding: 'utf8' }).trim().split('\n');
  for (const a of applets) {
    if (a === 'bin/busybox') continue;
    const depth = a.split('/').length - 1;
    try {
      symlinkSync(`${'../'.repeat(depth)}bin/busybox`.replace(/^\.\.\/bin/, '../bin'), join(dir, a));
    } catch {
      /* duplicate applet path */
    }
  }
  linkSync(join(dir, 'bin', 'busybox'), join(dir, 'usr', 'bin', 'busybox-hardlink'));
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n');
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\nuser:x:1000:\n');
  writeFileSync(join(dir, 'etc', 'hostname'), 'busybox\n');
  writeFileSync(join(dir, 'etc', 'motd'), 'welcome\n');
  writeFileSync(join(dir, 'var', 'lib', 'old', 'state'), 'old state\n');
  writeFileSync(join(dir, 'usr', 'share', 'doc', 'pkg', 'README'), 'docs\n');
  writeFileSync(join(dir, 'opt', 'replaced-dir', 'sub', 'f'), 'f\n');
  writeFileSync(join(dir, 'home', 'user', '.profile'), 'export PS1=$\n');
  chownSync(join(dir, 'home', 'user'), 1000, 1000);
  chownSync(join(dir, 'home', 'user', '.profile'), 1000, 1000);
  writeFileSync(join(dir, 'usr', 'bin', 'setuid-tool'), '#!/bin/sh\n');
  chmodSync(join(dir, 'usr', 'bin', 'setuid-tool'), 0o4755);
  chmodSync(join(dir, 'tmp'), 0o1777);
  chmodSync(join(dir, 'root'), 0o700);
  execFileSync('mkfifo', [join(dir, 'var', 'log', 'fifo')]);
  execFileSync('mknod', ['-m', '666', join(dir, 'dev', 'null'), 'c', '1', '3']);
  for (const f of ['etc/passwd', 'etc/group', 'bin/busybox']) utimesSync(join(dir, f), 1_650_000_000, 1_650_000_000);
  return execFileSync('tar', ['--numeric-owner', '--sort=name', '-C', dir, '-cf', '-', '.'], { maxBuffer: 1 << 28 });
}


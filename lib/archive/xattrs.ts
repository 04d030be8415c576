import { spawnSync } from 'node:child_process';
import { DistError } from '../errors.js';

/** Extended attributes of one path: name -> value as a latin1 byte string. */
export type Xattrs = Record<string, string>;

/**
 * Every extended attribute under `root`, by path relative to it (latin1 byte strings; under
 * `as` when given, which also keys the root itself), read by
 * one `getfattr -R` (Node has no getxattr(2); one process per tree, not per file). Symlinks
 * are not followed (`-h`, `-P`). overlayfs' own `trusted.overlay.*` are left out, as umoci
 * does.
 *
 * Errors: EINVAL when getfattr (Debian's `attr`) is not installed.
 */
export function readXattrs(root: string, as = ''): Map<string, Xattrs> {
  const r = spawnSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '--', root], {
    maxBuffer: 1 << 30,
    encoding: 'buffer',
  });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new DistError('EINVAL', missing ? 'getfattr is not installed (apt-get install attr): it reads xattrs' : `getfattr: ${r.error.message}`);
  }
  const out = new Map<string, Xattrs>();
  const top = root.replace(/\/+$/, '');
  const prefix = `${top}/`;
  let current: Xattrs | undefined;
  for (const line of r.stdout.toString('latin1').split('\n')) {
    if (line.startsWith('# file: ')) {
      const path = unescape(line.slice(8));
      current = undefined;
      // Keyed relative to root, under `as` (the root itself is `as`).
      if (path === top && as) out.set(as, (current = {}));
      else if (path.startsWith(prefix)) out.set(as ? `${as}/${path.slice(prefix.length)}` : path.slice(prefix.length), (current = {}));
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq < 0) continue;
    const name = line.slice(0, eq);
    if (name.startsWith('trusted.overlay.')) continue;
    const value = line.slice(eq + 1);
    current[name] = value.startsWith('0x') ? Buffer.from(value.slice(2), 'hex').toString('latin1') : unescape(value.replace(/^"|"$/g, ''));
  }
  for (const [k, v] of out) if (Object.keys(v).length === 0) out.delete(k);
  return out;
}

/** getfattr escapes bytes in names as `\ooo` octal. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))).replace(/\\\\/g, '\\');
}

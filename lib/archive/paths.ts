import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import { Transform } from 'node:stream';
import { DistError, sysCode } from '../errors.js';

/**
 * Safe path resolution for applying layers. Names are byte strings (latin1: one char per
 * byte), so any file name survives; only '/' separates, never '\'.
 *
 * The model is containerd's and umoci's: every *parent* component is resolved inside the
 * root, chroot-style (absolute symlink targets re-rooted, `..` clamped at the root), and the
 * final component is never followed. The only thing remembered across entries is the set of
 * directories this apply itself made or lstat'ed (lib/archive/apply.ts), and an entry that
 * replaces or removes a path forgets it and everything under it, so a directory swapped for a
 * symlink is lstat'ed, and resolved inside the root, again (the cache poisoning of
 * CVE-2021-32803).
 *
 * Assumption: nobody else modifies the target tree during an apply (Node has no openat2
 * RESOLVE_IN_ROOT, so resolution and use cannot be made atomic).
 */

/** Most symlinks followed while resolving one name, as Linux and containerd allow. */
export const MAX_LINKS = 255;
/** Deepest name accepted (node-tar's CVE-2024-28863 bound). */
export const MAX_DEPTH = 1024;

/** The OCI layer's whiteout prefix: `.wh.<name>` removes `<name>` of a lower layer. */
export const WHITEOUT = '.wh.';
/** The OCI layer's opaque marker: the directory holding it hides all its lower-layer children. */
export const OPAQUE = '.wh..wh..opq';

/** Lexically cleans a tar name to components: leading '/'s, '.', and '..' clamped at the root. */
export function cleanComponents(name: string): string[] {
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') out.pop();
    else out.push(c);
  }
  if (out.length > MAX_DEPTH) throw new DistError('EUNSAFE', `path is deeper than ${MAX_DEPTH} components: ${printable(name).slice(0, 200)}...`);
  return out;
}

/** A byte-string path as a Buffer for fs calls. */
export function fsPath(root: string, components: string[]): Buffer {
  return Buffer.from(components.length ? `${root}/${components.join('/')}` : root, 'latin1');
}

/** lstat, or undefined when the path does not exist. */
export function lstatOrUndefined(p: Buffer): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (err) {
    const code = sysCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * Resolves components inside `root` (a byte string without trailing '/'): symlinks among
 * them are followed chroot-style. Components past the first missing one are kept verbatim
 * (they will be created). Returns the resolved components, relative to the root.
 *
 * `dirs` holds paths ('/'-joined, relative) known to be real directories: they are not
 * lstat'ed again, and the ones this call finds are added. The caller must remove a path
 * (and everything under it) from `dirs` whenever it removes or replaces that path.
 */
export function resolveInRoot(root: string, components: string[], dirs?: Set<string>): string[] {
  const out: string[] = [];
  const queue = components.slice();
  let links = 0;
  let missing = false;
  while (queue.length) {
    const c = queue.shift()!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      out.pop();
      // After popping, what follows may exist again.
      missing = false;
      continue;
    }
    if (missing) {
      out.push(c);
      continue;
    }
    if (dirs?.has([...out, c].join('/'))) {
      out.push(c);
      continue;
    }
    const st = lstatOrUndefined(fsPath(root, [...out, c]));
    if (!st) {
      missing = true;
      out.push(c);
      continue;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw new DistError('EUNSAFE', `too many levels of symbolic links resolving ${printable(components.join('/'))}`);
      const target = readlinkSync(fsPath(root, [...out, c]), { encoding: 'latin1' });
      if (target.startsWith('/')) out.length = 0;
      queue.unshift(...target.split('/'));
      continue;
    }
    out.push(c);
    if (st.isDirectory()) dirs?.add(out.join('/'));
  }
  return out;
}

/** A byte-string name for messages: valid UTF-8 shown as such, other bytes escaped. */
export function printable(name: string): string {
  const buf = Buffer.from(name, 'latin1');
  const text = buf.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(buf)) return JSON.stringify(text).slice(1, -1);
  return [...buf].map((b) => (b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
}

/** A pass-through stage that shows `fn` every chunk on its way (to hash or count a layer's bytes). */
export function tap(fn: (chunk: Buffer) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      fn(chunk);
      cb(null, chunk);
    },
  });
}

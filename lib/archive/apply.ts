import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, closeSync, constants, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lutimesSync, mkdirSync,
  openSync, readdirSync, realpathSync, renameSync, rmSync, symlinkSync, writeSync,
} from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DistError, sysCode } from '../errors.js';
import { mkdirp } from '../fsp.js';
import { decompressor, peek, sniff, type Compression } from './decompress.js';
import { cleanComponents, fsPath, lstatOrUndefined, OPAQUE, printable, resolveInRoot, tap, WHITEOUT } from './paths.js';
import { tar } from './tar.js';

export interface ApplyOptions {
  signal?: AbortSignal;
  /** chown entries to their uid/gid (default: when running as root). */
  sameOwner?: boolean;
  /** Non-fatal notes: skipped device nodes when not root, unsupported xattrs. */
  onWarning?: (message: string) => void;
}

export interface ApplyResult {
  /** sha256 of the uncompressed tar: the layer's DiffID. */
  diffId: string;
  /** sha256 of the bytes read (the layer blob's digest). */
  digest: string;
  compression: Compression;
  /** Uncompressed bytes. */
  size: number;
  entries: number;
}

const O_NOFOLLOW = constants.O_NOFOLLOW;
const MAX_DEVICE = 2 ** 32 - 1;

/**
 * Applies one layer (tar, gzip or zstd, sniffed) from `input` to the directory `root`,
 * following the OCI layer rules: whiteouts and opaque directories (never hiding same-layer
 * entries), the replace rule, hardlinks resolved in the root, symlinks stored verbatim,
 * parents resolved chroot-style, metadata never through a symlink, ownership when root,
 * xattrs, and directory times set last. Nothing is created or changed outside `root`.
 *
 * Streams end to end: memory stays flat whatever the layer size. Entries are applied one at
 * a time in order, so there are no path reservation races.
 *
 * Errors: EINVAL (corrupt gzip/zstd/tar, named with the byte offset), EUNSAFE (hostile
 * entries: invalid whiteouts, device numbers out of range, sparse files), ENOENT (a hardlink
 * whose target does not exist), EIO (file system). The first error stops the apply; what was
 * applied so far stays (as with containerd, there is no rollback).
 */
export async function applyLayer(target: string, input: Readable, opts: ApplyOptions = {}): Promise<ApplyResult> {
  mkdirp(target);
  const root = realpathSync(Buffer.from(target), { encoding: 'buffer' }).toString('latin1').replace(/\/+$/, '');
  const head = await peek(input, 10);
  const compression = sniff(head);
  const rawHash = createHash('sha256');
  const diffHash = createHash('sha256');
  let rawBytes = 0;
  let tarBytes = 0;
  const applier = new Applier(root === '' ? '/' : root, opts);
  const extract = tar.extract({ filenameEncoding: 'latin1' } as never);
  extract.on('entry', (header: any, stream: any, next: (err?: Error | null) => void) => {
    applier.entry(header, stream).then(
      () => next(),
      (err) => {
        stream.resume();
        extract.destroy(err);
      },
    );
  });
  const decode = decompressor(compression);
  const stages: (NodeJS.ReadableStream | NodeJS.WritableStream | NodeJS.ReadWriteStream)[] = [input];
  // An uncompressed layer's digest is its DiffID: hash its bytes once.
  if (decode) {
    stages.push(
      tap((c) => {
        rawHash.update(c);
        rawBytes += c.length;
      }),
      decode,
    );
  }
  stages.push(
    tap((c) => {
      diffHash.update(c);
      tarBytes += c.length;
    }),
    extract as unknown as NodeJS.WritableStream,
  );
  try {
    await (pipeline as (...args: unknown[]) => Promise<void>)(...stages, { signal: opts.signal });
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    // tar-stream keeps the offset of the header it is decoding; it names a corrupt header exactly.
    const parsed = (extract as unknown as { _offset?: number })._offset;
    throw describe(err, compression, rawBytes, typeof parsed === 'number' ? parsed : tarBytes);
  }
  applier.finish();
  const diffId = `sha256:${diffHash.digest('hex')}`;
  return {
    diffId,
    digest: decode ? `sha256:${rawHash.digest('hex')}` : diffId,
    compression,
    size: tarBytes,
    entries: applier.entries,
  };
}

/** Turns a decoder or parser failure into one line that names where it happened. */
function describe(err: unknown, compression: Compression, rawBytes: number, tarBytes: number): unknown {
  if (err instanceof DistError) return err;
  const code = sysCode(err);
  const msg = err instanceof Error ? err.message : String(err);
  if (code?.startsWith('Z_') || /unexpected end of file|incorrect header check|invalid (block type|distance|stored block)/i.test(msg)) {
    return new DistError('EINVAL', `corrupt gzip stream near compressed byte ${rawBytes}: ${msg}`, { cause: err });
  }
  if (compression === 'zstd' && !/tar|header/i.test(msg) && !code) {
    return new DistError('EINVAL', `corrupt zstd stream near compressed byte ${rawBytes}: ${msg}`, { cause: err });
  }
  if (/tar header|Invalid header|Unexpected end|Header exceeds|premature|unknown format/i.test(msg) || code === 'ERR_STREAM_PREMATURE_CLOSE') {
    return new DistError('EINVAL', `corrupt tar at byte ${tarBytes}: ${msg}`, { cause: err });
  }
  if (code) return new DistError('EIO', msg, { cause: err, syscode: code });
  return err;
}

/** The fields of a tar-stream header the applier reads (names are latin1 byte strings). */
interface TarHeader {
  name: string;
  type: string | null;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  linkname?: string | null;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string> | null;
}

interface DirTimes {
  components: string[];
  atime: number;
  mtime: number;
}

class Applier {
  entries = 0;
  /** Paths (resolved, '/'-joined) written by this layer, with their ancestors. */
  private readonly written = new Set<string>();
  private readonly dirs: DirTimes[] = [];
  /**
   * Directories a whiteout removed something from, with their times as they stood before this
   * layer: a removal must not show as a change of the directory (umoci restores them too), so a
   * whiteout-only layer leaves them as they were. Keyed by '/'-joined path.
   */
  private readonly touched = new Map<string, DirTimes>();
  /**
   * Paths ('/'-joined) known to be real directories, not symlinks: made or lstat'ed by this
   * applier. Resolving a name then costs one lstat, not one per component (profiled: lstat was
   * a fifth of unpacking a Debian rootfs). Every removal or replacement drops the path and all
   * under it (`forget`), so a directory replaced by a symlink is lstat'ed, and followed, again.
   */
  private readonly known = new Set<string>();
  /**
   * Known directories this applier made: nothing is in them but what it wrote since, so a name
   * in one that is not in `written` does not exist, and is not lstat'ed (most of a first layer).
   */
  private readonly made = new Set<string>();
  private readonly sameOwner: boolean;
  private xattrTool: boolean | undefined;

  constructor(
    private readonly root: string,
    private readonly opts: ApplyOptions,
  ) {
    this.sameOwner = opts.sameOwner ?? process.geteuid?.() === 0;
  }

  private p(components: string[]): Buffer {
    return fsPath(this.root === '/' ? '' : this.root, components);
  }

  private warn(message: string): void {
    this.opts.onWarning?.(message);
  }

  async entry(h: TarHeader, stream: Readable): Promise<void> {
    this.entries++;
    const type = h.type;
    const name = h.name;
    const pax = (h.pax ?? {}) as Record<string, string>;
    if (pax['GNU.sparse.major'] !== undefined || pax['GNU.sparse.map'] !== undefined || pax['GNU.sparse.size'] !== undefined || type === 'gnu-sparse') {
      throw new DistError('EUNSAFE', `${printable(name)}: sparse files are not supported in layers`);
    }
    const comps = cleanComponents(name);
    if (comps.length === 0) {
      // The root itself (".", "/", ".."): never replaced or re-typed (CVE-2021-29136).
      return drain(stream);
    }
    const base = comps[comps.length - 1]!;
    const parentWanted = comps.slice(0, -1);
    if (base.startsWith(WHITEOUT)) {
      await drain(stream);
      return this.whiteout(parentWanted, base, name);
    }
    const parent = resolveInRoot(this.root, parentWanted, this.known);
    this.mkparents(parent);
    const path = [...parent, base];
    const full = this.p(path);
    const existing = this.made.has(parent.join('/')) && !this.written.has(path.join('/')) ? undefined : lstatOrUndefined(full);
    // The replace rule: only directory over directory merges; anything else is removed first
    // (a symlink itself, never its target), so nothing is ever written through an old inode.
    const merge = existing !== undefined && existing.isDirectory() && type === 'directory';
    if (existing && !merge) {
      this.forget(path);
      rmSync(full, { recursive: true, force: true });
    }
    const uid = paxInt(pax.uid) ?? h.uid ?? 0;
    const gid = paxInt(pax.gid) ?? h.gid ?? 0;
    const mode = (h.mode ?? 0o644) & 0o7777;
    const mtime = paxTime(pax.mtime) ?? (h.mtime ? h.mtime.getTime() / 1000 : 0);
    const atime = Math.max(paxTime(pax.atime) ?? mtime, mtime);
    switch (type) {
      case 'file':
      case 'contiguous-file': {
        const fd = openSync(full, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW, 0o600);
        try {
          for await (const chunk of stream) {
            let off = 0;
            while (off < (chunk as Buffer).length) off += writeSync(fd, chunk as Buffer, off);
          }
          if (this.sameOwner) fchownSync(fd, uid, gid);
          fchmodSync(fd, mode);
          this.xattrs(full, pax, fd);
          futimesSync(fd, atime, mtime);
        } finally {
          closeSync(fd);
        }
        break;
      }
      case 'directory': {
        await drain(stream);
        if (!merge) {
          mkdirSync(full, 0o700);
          this.made.add(path.join('/'));
        }
        this.known.add(path.join('/'));
        this.chown(full, uid, gid);
        chmodSync(full, mode);
        this.xattrs(full, pax);
        this.dirs.push({ components: comps, atime, mtime });
        break;
      }
      case 'symlink': {
        await drain(stream);
        // Stored verbatim, never validated: containment happens when later names resolve.
        symlinkSync(Buffer.from(h.linkname ?? '', 'latin1'), full);
        this.chown(full, uid, gid);
        lutimesSync(full, atime, mtime);
        break;
      }
      case 'link': {
        await drain(stream);
        const linkComps = cleanComponents(h.linkname ?? '');
        if (linkComps.length === 0) throw new DistError('EUNSAFE', `${printable(name)}: hardlink to the root directory`);
        // The target's parents resolve in the root; its last component is not followed, so a
        // hardlink to a symlink links the symlink itself (CVE-2021-32760, CVE-2026-26960).
        const targetPath = [...resolveInRoot(this.root, linkComps.slice(0, -1), this.known), linkComps[linkComps.length - 1]!];
        const t = lstatOrUndefined(this.p(targetPath));
        if (!t) throw new DistError('ENOENT', `${printable(name)}: hardlink target ${printable(h.linkname ?? '')} does not exist`);
        if (t.isDirectory()) throw new DistError('EUNSAFE', `${printable(name)}: hardlink to a directory (${printable(h.linkname ?? '')})`);
        linkSync(this.p(targetPath), full);
        // No metadata for hardlinks (as umoci): they share the target's inode, which may be a
        // symlink; changing it here would change the target too.
        break;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        await drain(stream);
        const major = h.devmajor ?? 0;
        const minor = h.devminor ?? 0;
        if (!(major >= 0 && major <= MAX_DEVICE && minor >= 0 && minor <= MAX_DEVICE)) {
          throw new DistError('EUNSAFE', `${printable(name)}: device number ${major}:${minor} out of range`);
        }
        if (type !== 'fifo' && process.geteuid?.() !== 0) {
          this.warn(`${printable(name)}: skipped ${type} ${major}:${minor} (device nodes need root)`);
          return;
        }
        this.mknod(full, type, mode, major, minor);
        this.chown(full, uid, gid);
        chmodSync(full, mode);
        this.xattrs(full, pax);
        lutimesSync(full, atime, mtime);
        break;
      }
      default:
        await drain(stream);
        throw new DistError('EUNSAFE', `${printable(name)}: unsupported tar entry type ${type ?? 'unknown'}`);
    }
    this.markWritten(path);
  }

  /**
   * `path` and everything under it are about to be removed: no longer known directories.
   * `known` is closed under ancestors (a path is added only after its parents), so when
   * `path` is not in it, nothing under it is either, and a file costs no scan.
   */
  private forget(path: string[]): void {
    const key = path.join('/');
    if (!this.known.delete(key)) return;
    this.made.delete(key);
    for (const k of this.known) {
      if (k.startsWith(`${key}/`)) {
        this.known.delete(k);
        this.made.delete(k);
      }
    }
  }

  private markWritten(path: string[]): void {
    for (let i = 1; i <= path.length; i++) this.written.add(path.slice(0, i).join('/'));
  }

  /** Creates missing parents (mode 0755 whatever the umask). An existing non-directory is ENOTDIR. */
  private mkparents(parent: string[]): void {
    for (let i = 1; i <= parent.length; i++) {
      const key = parent.slice(0, i).join('/');
      if (this.known.has(key)) continue;
      const p = this.p(parent.slice(0, i));
      const st = lstatOrUndefined(p);
      if (!st) {
        mkdirSync(p, 0o755);
        chmodSync(p, 0o755);
        this.made.add(key);
      } else if (!st.isDirectory()) {
        throw new DistError('EUNSAFE', `${printable(key)}: not a directory`);
      }
      this.known.add(key);
    }
  }

  private whiteout(parentWanted: string[], base: string, name: string): void {
    const parent = resolveInRoot(this.root, parentWanted, this.known);
    const dirStat = lstatOrUndefined(this.p(parent));
    if (base === OPAQUE) {
      if (dirStat?.isDirectory()) this.opaque(parent);
      return;
    }
    const hidden = base.slice(WHITEOUT.length);
    if (hidden === '' || hidden === '.' || hidden === '..') {
      throw new DistError('EUNSAFE', `invalid whiteout name: ${printable(name)}`);
    }
    if (hidden.startsWith(WHITEOUT)) return; // AUFS metadata such as .wh..wh.plnk: nothing to hide
    if (!dirStat?.isDirectory()) return;
    const target = [...parent, hidden];
    // Whiteouts hide lower layers only: what this layer wrote stays (OCI layer spec).
    if (this.written.has(target.join('/'))) return;
    this.keepTimes(parent);
    this.forget(target);
    rmSync(this.p(target), { recursive: true, force: true });
  }

  /** Notes `dir`'s times before the first removal in it (see `touched`). */
  private keepTimes(dir: string[]): void {
    const key = dir.join('/');
    if (this.touched.has(key)) return;
    const st = lstatOrUndefined(this.p(dir));
    if (st?.isDirectory()) this.touched.set(key, { components: dir, atime: st.atime.getTime() / 1000, mtime: st.mtime.getTime() / 1000 });
  }

  /** Removes everything under `dir` that this layer did not write, wherever the marker came. */
  private opaque(dir: string[]): void {
    for (const child of readdirSync(this.p(dir), { encoding: 'latin1' })) {
      const path = [...dir, child];
      if (!this.written.has(path.join('/'))) {
        this.keepTimes(dir);
        this.forget(path);
        rmSync(this.p(path), { recursive: true, force: true });
      } else if (lstatOrUndefined(this.p(path))?.isDirectory()) {
        this.opaque(path);
      }
    }
  }

  private chown(full: Buffer, uid: number, gid: number): void {
    if (this.sameOwner) lchownSync(full, uid, gid);
  }

  private mknod(full: Buffer, type: string, mode: number, major: number, minor: number): void {
    // Node has no mknod(2): make the node under an ASCII temp name in the root with the
    // system's mknod/mkfifo, then rename it (byte-exact name) into place.
    const tmp = `${this.root === '/' ? '' : this.root}/.dist-mknod-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const tmpPath = Buffer.from(tmp, 'latin1').toString();
    const octal = (mode & 0o7777).toString(8);
    try {
      if (type === 'fifo') execFileSync('mkfifo', ['-m', octal, tmpPath], { stdio: 'pipe' });
      else execFileSync('mknod', ['-m', octal, tmpPath, type === 'block-device' ? 'b' : 'c', String(major), String(minor)], { stdio: 'pipe' });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
      throw new DistError('EIO', `creating ${type}: ${stderr || (err as Error).message}`);
    }
    renameSync(Buffer.from(tmp, 'latin1'), full);
  }

  /** xattrs from PAX `SCHILY.xattr.<name>` records, set on the inode (never via a symlink). */
  private xattrs(full: Buffer, pax: Record<string, string>, fd?: number): void {
    const keys = Object.keys(pax).filter((k) => k.startsWith('SCHILY.xattr.'));
    if (keys.length === 0) return;
    if (this.xattrTool === undefined) {
      try {
        execFileSync('setfattr', ['--version'], { stdio: 'ignore' });
        this.xattrTool = true;
      } catch {
        this.xattrTool = false;
      }
    }
    if (!this.xattrTool) {
      this.warn(`${printable(full.toString('latin1'))}: xattrs not set (setfattr is not installed)`);
      return;
    }
    // Node has no setxattr(2). An O_PATH|O_NOFOLLOW descriptor pins the inode; setfattr then
    // reaches it through /proc/<pid>/fd, so no path is re-resolved and no symlink followed.
    const O_PATH = 0o10000000;
    const own = fd === undefined;
    const handle = own ? openSync(full, O_PATH | O_NOFOLLOW) : fd;
    try {
      for (const key of keys) {
        const xname = key.slice('SCHILY.xattr.'.length);
        const value = Buffer.from(pax[key]!, 'latin1');
        try {
          execFileSync('setfattr', ['-n', xname, '-v', `0x${value.toString('hex')}`, `/proc/${process.pid}/fd/${handle}`], { stdio: 'pipe' });
        } catch (err) {
          const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? '';
          if (/Operation not supported|Operation not permitted|Permission denied/.test(stderr)) {
            this.warn(`${printable(full.toString('latin1'))}: xattr ${xname} not set: ${stderr.split(': ').pop()}`);
          } else {
            throw new DistError('EIO', `setting xattr ${xname} on ${printable(full.toString('latin1'))}: ${stderr}`);
          }
        }
      }
    } finally {
      if (own) closeSync(handle);
    }
  }

  /**
   * Directory times last, after everything inside them was written; re-resolved in the root.
   * First those of directories whiteouts removed from, as before the layer; then those the
   * layer's own directory entries give, which win.
   */
  finish(): void {
    for (const d of [...this.touched.values(), ...this.dirs]) {
      const parent = resolveInRoot(this.root, d.components.slice(0, -1), this.known);
      const full = this.p([...parent, d.components[d.components.length - 1]!]);
      if (lstatOrUndefined(full)?.isDirectory()) lutimesSync(full, d.atime, d.mtime);
    }
  }
}

function paxInt(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

function paxTime(v: string | undefined): number | undefined {
  if (v === undefined || !/^-?\d+(\.\d+)?$/.test(v)) return undefined;
  return Number(v);
}

async function drain(stream: Readable): Promise<void> {
  for await (const _ of stream) void _;
}

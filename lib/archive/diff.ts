import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, constants, createReadStream, lstatSync, openSync, readdirSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { once } from 'node:events';
import { Duplex, PassThrough, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DistError, sysCode } from '../errors.js';
import type { Compression } from './decompress.js';
import { parallelGzip } from './gzip.js';
import { fsPath, OPAQUE, printable, tap, WHITEOUT } from './paths.js';
import { tar } from './tar.js';
import { readXattrs, type Xattrs } from './xattrs.js';

export interface DiffOptions {
  signal?: AbortSignal;
  compression?: Compression;
  /** SOURCE_DATE_EPOCH: times later than this are clamped to it. */
  sourceDateEpoch?: number;
  /** End `out` when done (default true; false for a process's stdout). */
  end?: boolean;
}

export interface DiffSummary {
  /** sha256 of the uncompressed tar: the layer's DiffID. */
  diffId: string;
  /** Bytes written (compressed when compressing). */
  size: number;
  added: number;
  modified: number;
  deleted: number;
}

/** Largest id the ustar header's 6 octal digits hold; above it the id goes in a PAX record. */
const USTAR_MAX_ID = 0o777777;
const CHUNK = 1 << 20;

/**
 * Writes to `out` a layer tar of what changed from `lower` to `upper`, so that applying it to a
 * copy of `lower` (lib/archive/apply.ts) gives exactly `upper`.
 *
 * What changed: type, mode, uid, gid, rdev, size, xattrs, link target, mtime; where sizes and
 * mtime seconds match and both nanosecond parts are 0 (times truncated by an earlier unpack, so
 * they prove nothing), the content is compared, as containerd's continuity does. A removed
 * path becomes `.wh.<name>`; a directory none of whose old children remain becomes an opaque
 * `.wh..wh..opq`; hardlinks stay hardlinks (grouped by inode, the first path in walk order
 * carries the content).
 *
 * Deterministic: entries in walk order (children sorted bytewise, whiteouts before their
 * siblings), numeric ids and no user or group names, PAX records where ustar cannot hold a
 * value, mtimes truncated to seconds and clamped to `sourceDateEpoch`, gzip header mtime 0.
 *
 * Streams: file contents go from disk to `out` in 1 MiB pieces; memory is flat.
 * Assumes neither tree changes during the diff.
 *
 * Errors: ENOENT (a missing directory), EIO (file system), EINVAL (a file that changed size
 * while being read).
 */
export async function writeDiff(lower: string, upper: string, out: Writable, opts: DiffOptions = {}): Promise<DiffSummary> {
  for (const [what, dir] of [['lower', lower], ['upper', upper]] as const) {
    let st: Stats;
    try {
      st = lstatSync(dir);
    } catch (err) {
      throw new DistError('ENOENT', `${what} directory ${dir} does not exist`, { syscode: sysCode(err) });
    }
    if (!st.isDirectory()) throw new DistError('EINVAL', `${what} ${dir} is not a directory`);
  }
  const pack = tar.pack();
  const tarHash = createHash('sha256');
  let outBytes = 0;
  const stages: (NodeJS.ReadableStream | NodeJS.WritableStream | NodeJS.ReadWriteStream)[] = [
    pack as unknown as Readable,
    tap((c) => tarHash.update(c)),
  ];
  const zstd = opts.compression === 'zstd' ? zstdCompressor() : undefined;
  if (opts.compression === 'gzip') stages.push(parallelGzip());
  if (zstd) stages.push(zstd.stream);
  stages.push(
    // The blob's digest is its writer's business (lib/content/writer.ts hashes what it stores).
    tap((c) => {
      outBytes += c.length;
    }),
    out,
  );
  const differ = new Differ(lower, upper, pack, opts);
  const piped = (pipeline as (...args: unknown[]) => Promise<void>)(...stages, { signal: opts.signal, end: opts.end ?? true });
  await drive(pack, () => differ.run(), piped);
  if (zstd) await zstd.done;
  return {
    diffId: `sha256:${tarHash.digest('hex')}`,
    size: outBytes,
    added: differ.added,
    modified: differ.modified,
    deleted: differ.deleted,
  };
}

/**
 * Writes to `out` a plain tar of the host path `src` (a file, symlink or directory with all
 * under it) with its entries named `name` and `name/...`: what a build's `copy` applies into a
 * rootfs through apply's rules, so a hostile `name` or a symlink in the rootfs stays inside it.
 * Errors: ENOENT (no such `src`), EIO.
 */
export async function writeTree(src: string, name: string, out: Writable, opts: { signal?: AbortSignal } = {}): Promise<void> {
  const abs = src.replace(/\/+$/, '') || '/';
  const slash = abs.lastIndexOf('/');
  const parent = abs.slice(0, slash) || '/';
  const base = abs.slice(slash + 1);
  try {
    lstatSync(abs);
  } catch (err) {
    throw new DistError('ENOENT', `${src}: no such file or directory`, { syscode: sysCode(err) });
  }
  const pack = tar.pack();
  const differ = new Differ(parent, parent, pack, { signal: opts.signal }, (rel) => (rel === base ? name : `${name}${rel.slice(base.length)}`));
  await drive(pack, () => differ.tree(base), pipeline(pack as unknown as Readable, out, { signal: opts.signal }));
}

/** Runs the walk that fills `pack` while `piped` drains it; the pack ends, or fails, with the walk. */
async function drive(pack: ReturnType<typeof tar.pack>, walk: () => Promise<void>, piped: Promise<void>): Promise<void> {
  const walked = walk().then(
    () => pack.finalize(),
    (err) => {
      pack.destroy(err);
      throw err;
    },
  );
  // The walk's error is the one worth reporting; the pipeline then fails with it too.
  const [w, p] = await Promise.allSettled([walked, piped]);
  if (w.status === 'rejected') throw w.reason;
  if (p.status === 'rejected') throw p.reason;
}

/** zstd through the system's zstd (Node 20's zlib has none): a pipe in, a pipe out. */
function zstdCompressor(): { stream: NodeJS.ReadWriteStream; done: Promise<void> } {
  const child = spawn('zstd', ['-q', '-c', '-3', '--no-check'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr: Buffer[] = [];
  child.stderr.on('data', (c: Buffer) => stderr.push(c));
  const input = new PassThrough();
  const output = new PassThrough();
  input.pipe(child.stdin);
  child.stdout.pipe(output);
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (err) => reject(new DistError('EIO', `zstd: ${err.message}`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new DistError('EIO', `zstd failed: ${Buffer.concat(stderr).toString().trim()}`))));
  });
  done.catch((err) => output.destroy(err));
  // One duplex: its writable side feeds zstd, its readable side is zstd's output.
  const stream = Duplex.from({ writable: input, readable: output }) as NodeJS.ReadWriteStream;
  return { stream, done };
}

/** The fields of a tar-stream header the differ writes. */
interface Header {
  name: string;
  type: 'file' | 'link' | 'symlink' | 'directory' | 'character-device' | 'block-device' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  size?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

class Differ {
  added = 0;
  modified = 0;
  deleted = 0;
  private lowerX!: Map<string, Xattrs>;
  private upperX!: Map<string, Xattrs>;
  /** Upper inode -> the first path walked with it (the one that carries the content). */
  private readonly upperFirst = new Map<string, string>();
  /** Lower inode -> the first path walked with it. */
  private readonly lowerFirst = new Map<string, string>();
  /** First paths of upper hardlink groups that were written into the layer. */
  private readonly written = new Set<string>();

  constructor(
    private readonly lower: string,
    private readonly upper: string,
    private readonly pack: ReturnType<typeof tar.pack>,
    private readonly opts: DiffOptions,
    /** The tar name of an upper path (writeTree renames; a diff keeps paths as they are). */
    private readonly nameOf: (rel: string) => string = (rel) => rel,
  ) {}

  async run(): Promise<void> {
    this.lowerX = readXattrs(this.lower);
    this.upperX = readXattrs(this.upper);
    await this.dir('', true);
  }

  /** Writes upper's `rel` and everything under it, as new. */
  async tree(rel: string): Promise<void> {
    this.lowerX = new Map();
    this.upperX = readXattrs(`${this.upper}/${rel}`.replace(/^\/\//, '/'), rel);
    await this.add(rel);
  }

  /** The fs path of `rel` under a tree's root ('' is the root itself). */
  private path(root: string, rel: string): Buffer {
    return fsPath(root, rel ? [rel] : []);
  }

  private list(root: string, rel: string): string[] {
    return readdirSync(this.path(root, rel), { encoding: 'latin1' }).sort(bytewise);
  }

  /** Walks directory `rel` of upper; `lowerIsDir` says whether lower has a directory there. */
  private async dir(rel: string, lowerIsDir: boolean): Promise<void> {
    this.opts.signal?.throwIfAborted();
    const upperNames = this.list(this.upper, rel);
    const lowerNames = lowerIsDir ? this.list(this.lower, rel) : [];
    const inUpper = new Set(upperNames);
    const gone = lowerNames.filter((n) => !inUpper.has(n));
    const join = (n: string) => (rel ? `${rel}/${n}` : n);
    // Every old child gone: one opaque marker instead of a whiteout each (and new children,
    // if any, are all written whole).
    const opaque = gone.length > 0 && gone.length === lowerNames.length;
    if (opaque) {
      await this.marker(join(OPAQUE));
      this.deleted += gone.length;
    } else {
      for (const n of gone) {
        await this.marker(join(WHITEOUT + n));
        this.deleted++;
      }
    }
    const inLower = new Set(lowerNames);
    for (const n of upperNames) {
      if (inLower.has(n) && !opaque) await this.compare(join(n));
      else await this.add(join(n));
    }
  }

  /** A path only upper has: written whole (a directory with everything under it). */
  private async add(rel: string): Promise<void> {
    const u = lstatSync(this.path(this.upper, rel));
    if (u.isSocket()) return; // tar has no socket type
    this.added++;
    if (u.isDirectory()) {
      await this.entry(rel, u);
      return this.dir(rel, false);
    }
    const first = this.groupFirst(this.upperFirst, u, rel);
    if (first !== rel) return this.entry(rel, u, first);
    this.written.add(rel);
    await this.entry(rel, u);
  }

  /** A path both trees have. */
  private async compare(rel: string): Promise<void> {
    const u = lstatSync(this.path(this.upper, rel));
    const l = lstatSync(this.path(this.lower, rel));
    if (u.isSocket()) return;
    if (u.isDirectory()) {
      if (!l.isDirectory()) {
        this.modified++;
        await this.entry(rel, u);
        return this.dir(rel, false);
      }
      if (!this.sameMeta(rel, u, l) || seconds(u.mtimeMs) !== seconds(l.mtimeMs)) {
        this.modified++;
        await this.entry(rel, u);
      }
      return this.dir(rel, true);
    }
    const uFirst = this.groupFirst(this.upperFirst, u, rel);
    const lFirst = l.isDirectory() ? undefined : this.groupFirst(this.lowerFirst, l, rel);
    if (uFirst !== rel) {
      // A later member of an upper hardlink group: unchanged only if lower links it to the
      // same first path, and that path's inode was not replaced.
      if (lFirst === uFirst && !this.written.has(uFirst)) return;
      this.modified++;
      return this.entry(rel, u, uFirst);
    }
    // First (or only) path of its inode: linked to an earlier path in lower means it must be
    // split off, whatever its content.
    if (lFirst === rel && this.sameFile(rel, u, l)) return;
    this.modified++;
    this.written.add(rel);
    await this.entry(rel, u);
  }

  /** The first path walked with this inode (registering `rel` when it is the first). */
  private groupFirst(map: Map<string, string>, st: Stats, rel: string): string {
    if (st.nlink < 2) return rel;
    const key = `${st.dev}:${st.ino}`;
    const first = map.get(key);
    if (first !== undefined) return first;
    map.set(key, rel);
    return rel;
  }

  private sameMeta(rel: string, u: Stats, l: Stats): boolean {
    return (
      (u.mode & 0o170000) === (l.mode & 0o170000) &&
      (u.mode & 0o7777) === (l.mode & 0o7777) &&
      u.uid === l.uid &&
      u.gid === l.gid &&
      sameXattrs(this.upperX.get(rel), this.lowerX.get(rel))
    );
  }

  /** continuity's sameFile: stat first, then the content only where times prove nothing. */
  private sameFile(rel: string, u: Stats, l: Stats): boolean {
    if (!this.sameMeta(rel, u, l) || u.rdev !== l.rdev || u.size !== l.size) return false;
    if (u.isSymbolicLink()) {
      return readlinkSync(this.path(this.upper, rel), { encoding: 'latin1' }) === readlinkSync(this.path(this.lower, rel), { encoding: 'latin1' });
    }
    if (seconds(u.mtimeMs) !== seconds(l.mtimeMs)) return false;
    if (!u.isFile()) return true;
    const un = nanos(u);
    const ln = nanos(l);
    if (un !== 0 || ln !== 0) return un === ln;
    return sameContent(this.path(this.upper, rel), this.path(this.lower, rel), u.size);
  }

  private mtime(st: Stats): Date {
    let s = seconds(st.mtimeMs);
    if (this.opts.sourceDateEpoch !== undefined && s > this.opts.sourceDateEpoch) s = this.opts.sourceDateEpoch;
    return new Date(s * 1000);
  }

  /** A whiteout or opaque marker: an empty regular file at the epoch. */
  private marker(name: string): Promise<void> {
    return this.write({ name: this.nameOf(name), type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), size: 0 });
  }

  /** Writes the entry for upper's `rel`: a hardlink to `linkTo`, or the file itself. */
  private async entry(rel: string, st: Stats, linkTo?: string): Promise<void> {
    const full = this.path(this.upper, rel);
    const h: Header = { name: this.nameOf(rel), type: 'file', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: this.mtime(st) };
    const pax: Record<string, string> = {};
    // A hardlink shares its target's inode: no xattrs of its own (the target's entry has them).
    if (linkTo === undefined) for (const [k, v] of Object.entries(this.upperX.get(rel) ?? {})) pax[`SCHILY.xattr.${k}`] = v;
    if (st.uid > USTAR_MAX_ID) pax.uid = String(st.uid);
    if (st.gid > USTAR_MAX_ID) pax.gid = String(st.gid);
    if (linkTo !== undefined) {
      h.type = 'link';
      h.linkname = this.nameOf(linkTo);
      h.size = 0;
    } else if (st.isDirectory()) {
      h.type = 'directory';
      h.name = `${h.name}/`;
    } else if (st.isSymbolicLink()) {
      h.type = 'symlink';
      h.linkname = readlinkSync(full, { encoding: 'latin1' });
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      h.type = st.isCharacterDevice() ? 'character-device' : 'block-device';
      h.devmajor = devMajor(st.rdev);
      h.devminor = devMinor(st.rdev);
    } else if (st.isFIFO()) {
      h.type = 'fifo';
    } else if (!st.isFile()) {
      throw new DistError('EINVAL', `${printable(rel)}: unsupported file type`);
    }
    // tar-stream's ustar encoder writes names as UTF-8: a byte string with high bytes goes in
    // a PAX record (byte-exact, see tar.ts), as does a link target.
    if (!isAscii(h.name) || (h.linkname !== undefined && !isAscii(h.linkname))) h.pax = pax;
    if (Object.keys(pax).length) h.pax = pax;
    if (h.type !== 'file') {
      h.size = 0;
      return this.write(h);
    }
    h.size = st.size;
    return this.writeFile(h, full);
  }

  private write(h: Header, body: Buffer = Buffer.alloc(0)): Promise<void> {
    return new Promise((resolve, reject) => this.pack.entry(h as never, body, (err) => (err ? reject(err) : resolve())));
  }

  /** Streams a file into the tar; the entry's callback waits for the pack to drain. */
  private async writeFile(h: Header, full: Buffer): Promise<void> {
    if (h.size! <= CHUNK) {
      const buf = Buffer.allocUnsafe(h.size!);
      const fd = openSync(full, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        let at = 0;
        while (at < buf.length) {
          const n = readSync(fd, buf, at, buf.length - at, at);
          if (n === 0) throw new DistError('EINVAL', `${printable(h.name)}: file shrank while being read`);
          at += n;
        }
      } finally {
        closeSync(fd);
      }
      return this.write(h, buf);
    }
    let done!: Promise<void>;
    const sink = await new Promise<Writable>((resolve) => {
      done = new Promise((res, rej) => {
        resolve(this.pack.entry(h as never, (err) => (err ? rej(err) : res())) as unknown as Writable);
      });
    });
    for await (const chunk of createReadStream(full, { highWaterMark: CHUNK })) {
      if (!sink.write(chunk)) await once(sink, 'drain');
    }
    sink.end();
    await done;
  }
}

function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

function nanos(st: Stats): number {
  // Stats carries mtime as a float of ms; mtimeNs needs bigint stats. The sub-second part, to
  // the microsecond, is enough to tell "truncated to 0" from "set".
  return Math.round((st.mtimeMs - Math.floor(st.mtimeMs / 1000) * 1000) * 1000);
}

function sameXattrs(a: Xattrs | undefined, b: Xattrs | undefined): boolean {
  const ak = Object.keys(a ?? {}).sort();
  const bk = Object.keys(b ?? {}).sort();
  return ak.length === bk.length && ak.every((k, i) => k === bk[i] && a![k] === b![k]);
}

/** Two read buffers reused by every comparison (a Debian rootfs compares ~10,000 files). */
const compareBuffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)] as const;

function sameContent(a: Buffer, b: Buffer, size: number): boolean {
  const fa = openSync(a, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const fb = openSync(b, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const [ba, bb] = compareBuffers;
      for (let at = 0; at < size; ) {
        const want = Math.min(CHUNK, size - at);
        const na = readSync(fa, ba, 0, want, at);
        const nb = readSync(fb, bb, 0, want, at);
        if (na !== nb || na === 0 || ba.compare(bb, 0, nb, 0, na) !== 0) return false;
        at += na;
      }
      return true;
    } finally {
      closeSync(fb);
    }
  } finally {
    closeSync(fa);
  }
}

function bytewise(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}

/** glibc's gnu_dev_major/minor. */
function devMajor(rdev: number): number {
  return Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
}

function devMinor(rdev: number): number {
  return Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));
}

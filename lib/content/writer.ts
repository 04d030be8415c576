import { createReadStream, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, open, rename, rm, rmdir, writeFile, chmod, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Hash } from 'node:crypto';
import { hasher, parseDigest, type Algorithm, type Digest } from '../digest.js';
import { DistError, sysCode } from '../errors.js';
import type { Lock } from './lock.js';
import type { Store } from './store.js';

export interface WriterOptions {
  /** The transaction key. Concurrent writers of one ref meet at one ingest directory. */
  ref: string;
  /** The digest the content must have. Enables the already-exists shortcut. */
  expected?: string;
  /** The size the content must have; recorded in `total` for `dist active`. */
  total?: number;
  /** Wait for another process holding the ref (default true). */
  wait?: boolean;
  signal?: AbortSignal;
  onWait?: (since: Date) => void;
}

/** What `openWriter` found: the blob is already there, or a writer positioned at `offset`. */
export type OpenResult = { exists: true; digest: string } | { exists: false; writer: Writer };

/**
 * Opens (begins or resumes) the ingest transaction for `ref`.
 *
 * Lifecycle:
 * 1. If `expected` is committed already, returns `{exists: true}` before touching the ingest.
 * 2. Takes the ref's cross-process lock, waiting while another process holds it; if the
 *    expected blob appears meanwhile, returns `{exists: true}`.
 * 3. Resumes: existing `data` is re-hashed and `writer.offset` says how many bytes are held.
 *    A `ref` file that does not match, or a different `total`, restarts the ingest from zero.
 *
 * The caller then writes, and ends with exactly one of `commit()`, `close()` (keep for
 * resume) or `abort()` (discard).
 *
 * Errors: EINVAL (bad expected digest), ELOCKED (held and `wait` false), EIO (file system).
 */
export async function openWriter(store: Store, opts: WriterOptions): Promise<OpenResult> {
  const expected = opts.expected !== undefined ? parseDigest(opts.expected) : undefined;
  if (opts.total !== undefined && (!Number.isSafeInteger(opts.total) || opts.total < 0)) {
    throw new DistError('EINVAL', `invalid expected size ${opts.total}`);
  }
  if (expected && (await store.has(expected))) return { exists: true, digest: expected.text };
  const dir = store.ingestDir(opts.ref);
  // Loaded here, not at start-up: an ingest that finds its blob (the common case in a re-run
  // pipeline) never locks, and proper-lockfile with graceful-fs is most of its load time.
  const { acquire } = await import('./lock.js');
  const lock = await acquire(dir, {
    wait: opts.wait ?? true,
    signal: opts.signal,
    onWait: opts.onWait,
    done: expected ? () => store.has(expected) : undefined,
  });
  if (!lock) return { exists: true, digest: expected!.text };
  try {
    if (expected && (await store.has(expected))) {
      await discardIngest(dir, lock);
      return { exists: true, digest: expected.text };
    }
    const writer = await Writer.begin(store, dir, lock, opts.ref, expected, opts.total);
    return { exists: false, writer };
  } catch (err) {
    await lock.release().catch(() => {});
    throw err;
  }
}

/**
 * An open ingest transaction. Not safe for concurrent use within a process: one stream feeds
 * it. Its lock keeps other processes out until commit, close or abort.
 */
export class Writer {
  private hash: Hash;
  private fh: FileHandle;
  private _offset: number;
  private ended = false;

  private constructor(
    readonly store: Store,
    readonly dir: string,
    private readonly lock: Lock,
    readonly ref: string,
    readonly expected: Digest | undefined,
    readonly total: number | undefined,
    fh: FileHandle,
    hash: Hash,
    offset: number,
  ) {
    this.fh = fh;
    this.hash = hash;
    this._offset = offset;
  }

  /** Bytes held so far: resumed data plus everything written. */
  get offset(): number {
    return this._offset;
  }

  get algorithm(): Algorithm {
    return this.expected?.algorithm ?? 'sha256';
  }

  static async begin(
    store: Store,
    dir: string,
    lock: Lock,
    ref: string,
    expected: Digest | undefined,
    total: number | undefined,
  ): Promise<Writer> {
    const algorithm = expected?.algorithm ?? 'sha256';
    const dataPath = join(dir, 'data');
    const held = await readStatus(dir);
    const resumable =
      held.ref === ref && held.size !== undefined && (total === undefined || held.total === undefined || held.total === total);
    const now = new Date().toISOString();
    if (!resumable) {
      if (held.size !== undefined) await rm(dataPath, { force: true });
      // updatedat is written on close, as containerd does; until then `active` reads the data
      // file's mtime.
      // Small status files: synchronous calls cost microseconds, where fs/promises' FileHandle
      // and thread-pool round trips showed up as ~130 ms in a 40-layer pull's profile.
      writeFileSync(join(dir, 'ref'), ref);
      writeFileSync(join(dir, 'startedat'), now);
      if (total !== undefined) writeFileSync(join(dir, 'total'), String(total));
      else if (held.total !== undefined) rmSync(join(dir, 'total'), { force: true });
    } else if (total !== undefined && held.total === undefined) {
      await writeFile(join(dir, 'total'), String(total));
    }
    const hash = hasher(algorithm);
    let offset = 0;
    if (resumable) {
      // Node cannot persist a hash state across processes, so a resume re-reads what is held.
      for await (const chunk of createReadStream(dataPath, { highWaterMark: 1 << 20 })) {
        hash.update(chunk as Buffer);
        offset += (chunk as Buffer).length;
      }
    }
    const fh = await open(dataPath, 'a');
    return new Writer(store, dir, lock, ref, expected, total, fh, hash, offset);
  }

  /**
   * Appends bytes. Fails with EBADSIZE, writing nothing of the chunk, when they would pass the
   * expected total, so an over-long stream is never read or stored beyond its bound.
   */
  async write(chunks: Buffer[]): Promise<void> {
    this.checkOpen();
    let length = 0;
    for (const c of chunks) length += c.length;
    if (this.total !== undefined && this._offset + length > this.total) {
      throw new DistError(
        'EBADSIZE',
        `${this.label()}: content is larger than the expected size ${this.total}`,
        { expected: this.total, found: `more than ${this.total}` },
      );
    }
    try {
      await this.fh.writev(chunks);
    } catch (err) {
      throw ioError(err, `writing ingest ${JSON.stringify(this.ref)} at offset ${this._offset}`);
    }
    for (const c of chunks) this.hash.update(c);
    this._offset += length;
  }

  /**
   * Commits: fsync, check size, check digest, rename into `blobs/`, fsync the directory.
   * A blob is never visible unless its bytes hash to its name. When the blob already exists
   * (a racing writer won), the ingest is discarded and the existing digest returned.
   *
   * Errors: EBADSIZE (size mismatch), EINTEGRITY (digest mismatch). Both discard the ingest,
   * since its bytes can never become the expected blob.
   */
  async commit(): Promise<string> {
    this.checkOpen();
    this.ended = true;
    try {
      const lockLost = this.lock.compromised;
      if (lockLost) throw new DistError('ELOCKED', `${this.label()}: lock lost while writing: ${lockLost.message}`);
      await this.fh.sync();
      const size = (await this.fh.stat()).size;
      await this.fh.close();
      if (size !== this._offset) {
        throw new DistError('EIO', `${this.label()}: data changed underneath the writer (${size} != ${this._offset} bytes)`);
      }
      if (this.total !== undefined && size !== this.total) {
        throw new DistError('EBADSIZE', `${this.label()}: size mismatch: expected ${this.total} bytes, got ${size}`, {
          expected: this.total,
          found: size,
        });
      }
      const found = `${this.algorithm}:${this.hash.digest('hex')}`;
      if (this.expected && found !== this.expected.text) {
        throw new DistError('EINTEGRITY', `${this.label()}: digest mismatch: expected ${this.expected.text}, got ${found}`, {
          expected: this.expected.text,
          found,
          digest: this.expected.text,
        });
      }
      const target = this.store.blobPath(found);
      if (!(await this.store.has(found))) {
        await mkdir(dirname(target), { recursive: true });
        const data = join(this.dir, 'data');
        // Read-only before it becomes visible: blobs are immutable.
        await chmod(data, 0o444);
        await rename(data, target);
        await fsyncDir(dirname(target));
      }
      await discardIngest(this.dir, this.lock);
      return found;
    } catch (err) {
      if (err instanceof DistError && (err.code === 'EBADSIZE' || err.code === 'EINTEGRITY')) {
        await discardIngest(this.dir, this.lock);
      } else {
        await this.lock.release().catch(() => {});
      }
      throw err instanceof DistError ? err : ioError(err, `committing ingest ${JSON.stringify(this.ref)}`);
    }
  }

  /** Ends the transaction but keeps the data for a later resume. Idempotent. */
  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    try {
      await this.fh.sync().catch(() => {});
      await this.fh.close();
      await writeFile(join(this.dir, 'updatedat'), new Date().toISOString()).catch(() => {});
    } finally {
      await this.lock.release();
    }
  }

  /** Ends the transaction and deletes its data. */
  async abort(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      await this.fh.close().catch(() => {});
    }
    await discardIngest(this.dir, this.lock);
  }

  private checkOpen(): void {
    if (this.ended) throw new Error('ingest writer used after it ended');
  }

  private label(): string {
    return this.expected ? this.expected.text : `ingest ${JSON.stringify(this.ref)}`;
  }
}

/** What an ingest directory holds, read without taking its lock. */
export interface IngestFiles {
  ref?: string;
  size?: number;
  total?: number;
  startedAt?: Date;
  updatedAt?: Date;
}

/** Reads an ingest directory's status files (small: read synchronously). Missing files are left undefined. */
export async function readStatus(dir: string): Promise<IngestFiles> {
  const text = (name: string) => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch (err) {
      if (sysCode(err) === 'ENOENT' || sysCode(err) === 'ENOTDIR') return undefined;
      throw err;
    }
  };
  const [ref, total, startedat, updatedat] = [text('ref'), text('total'), text('startedat'), text('updatedat')];
  let size: number | undefined;
  let mtime: Date | undefined;
  try {
    const st = statSync(join(dir, 'data'));
    size = st.size;
    mtime = st.mtime;
  } catch (err) {
    if (sysCode(err) !== 'ENOENT' && sysCode(err) !== 'ENOTDIR') throw err;
  }
  const updated = updatedat ? new Date(updatedat) : undefined;
  return {
    ref,
    size,
    total: total !== undefined && /^\d+$/.test(total.trim()) ? Number(total.trim()) : undefined,
    startedAt: startedat ? new Date(startedat) : undefined,
    // updatedat is written on close only; a live writer's progress shows in the data mtime.
    updatedAt: mtime && (!updated || mtime > updated) ? mtime : updated,
  };
}

/** Removes an ingest directory's files, releases its lock, then the directory if empty. */
export async function discardIngest(dir: string, lock: Lock): Promise<void> {
  for (const name of ['data', 'ref', 'total', 'startedat', 'updatedat']) rmSync(join(dir, name), { force: true });
  await lock.release();
  // Another process may have taken the lock already: then the directory is not empty and is theirs.
  await rmdir(dir).catch(() => {});
}

async function fsyncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Wraps a file system error with context, keeping its code (ENOSPC, EACCES, ...) visible. */
export function ioError(err: unknown, doing: string): DistError {
  if (err instanceof DistError) return err;
  const code = sysCode(err);
  const msg = err instanceof Error ? err.message : String(err);
  return new DistError('EIO', `${doing}: ${msg}`, { cause: err, syscode: code });
}

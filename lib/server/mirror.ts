import { closeSync, openSync, read } from 'node:fs';
import { join } from 'node:path';
import { writeBlob } from '../content/ingest.js';
import type { Store } from '../content/store.js';
import { putBlob, syncBlobDirs } from '../content/writer.js';
import { isDistError, sysCode } from '../errors.js';
import { MANIFEST_TYPES, type Descriptor } from '../image/mediatypes.js';
import { setName } from '../image/names.js';
import type { RegistryClient } from '../remote/client.js';
import { fetchManifest, openBlob } from '../remote/fetcher.js';
import { parseLocator, type Locator } from '../remote/locator.js';
import type { Ctx } from './context.js';
import { RegistryError } from './errors.js';
import { sendBlobFd } from './read.js';

/** Bytes read from the growing ingest file per client write. */
const FOLLOW_CHUNK = 1 << 20;

/**
 * Pull-through cache (`--mirror <upstream>`). A miss is fetched from the upstream into the
 * store once, however many clients ask at once (one flight per blob digest, per manifest);
 * the clients of a blob in flight are streamed from the ingest file as it grows, and never
 * get its last byte before the whole blob has been verified and committed: when the upstream
 * sent wrong bytes the commit fails and every client's response is cut short, so no client
 * takes corrupt bytes for a complete blob. Tags are looked up in the store first and fetched
 * only when missing (a tag that moves upstream is not followed until its name is removed).
 */
export class Mirror {
  private readonly flights = new Map<string, Flight>();
  private readonly manifests = new Map<string, Promise<Descriptor | undefined>>();

  constructor(
    private readonly store: Store,
    private readonly client: RegistryClient,
    /** `http://host:port`, `host:port` or `docker.io`. */
    private readonly upstream: string,
    private readonly signal: AbortSignal,
  ) {}

  /** Where `repository` is upstream. */
  locator(repository: string): Locator {
    return parseLocator(`${this.upstream.replace(/\/+$/, '')}/${repository}`);
  }

  private once<T extends Descriptor | undefined>(key: string, fn: () => Promise<T>): Promise<T> {
    let p = this.manifests.get(key) as Promise<T> | undefined;
    if (!p) {
      p = fn().finally(() => this.manifests.delete(key));
      this.manifests.set(key, p);
    }
    return p;
  }

  /** Fetches a tag's manifest, stores it and names it `<upstream host>/<repo>:<tag>`. Undefined when the upstream has no such tag. */
  tag(repository: string, tag: string): Promise<Descriptor | undefined> {
    return this.once(`${repository}:${tag}`, async () => {
      const loc = this.locator(repository);
      const got = await this.fetch(loc, tag);
      if (!got) return undefined;
      await setName(this.store, `${loc.host}/${repository}:${tag}`, got);
      return got;
    });
  }

  /** Fetches a manifest by digest into the store (verified against the digest). */
  async manifest(repository: string, digest: string): Promise<void> {
    await this.once(digest, () => this.fetch(this.locator(repository), digest));
  }

  private async fetch(loc: Locator, reference: string): Promise<Descriptor | undefined> {
    try {
      const { descriptor, bytes } = await fetchManifest(this.client, loc, reference, MANIFEST_TYPES, this.signal);
      await putBlob(this.store, bytes, descriptor.digest, bytes.length);
      syncBlobDirs(this.store, [descriptor.digest]);
      return descriptor;
    } catch (err) {
      if (isDistError(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  /** Serves a blob the store lacks: joins (or starts) its flight and streams it as it arrives. */
  async blob(ctx: Ctx, digest: string): Promise<void> {
    let flight = this.flights.get(digest);
    if (!flight) {
      flight = new Flight(this.store, this.client, this.locator(ctx.repository), digest, this.signal);
      this.flights.set(digest, flight);
      const f = flight;
      f.done.catch(() => {}).finally(() => this.flights.delete(digest));
    }
    try {
      await flight.ready;
    } catch (err) {
      if (isDistError(err, 'ENOENT')) throw new RegistryError('BLOB_UNKNOWN', `${digest}: blob unknown upstream`);
      throw err;
    }
    // Ranges, HEADs and blobs of unknown size are answered from the store once committed.
    if (flight.size < 0 || ctx.req.headers.range || flight.dataPath === undefined) {
      if (!ctx.head || flight.size < 0) await flight.done;
      if (ctx.head && flight.size >= 0) return sendHead(ctx, digest, flight.size);
      return sendBlobFd(ctx, openSync(this.store.blobPath(digest), 'r'), digest);
    }
    if (ctx.head) return sendHead(ctx, digest, flight.size);
    let fd: number;
    try {
      fd = openSync(flight.dataPath, 'r');
    } catch (err) {
      // Committed (renamed into blobs/) or failed between the flight's open and ours.
      if (sysCode(err) !== 'ENOENT') throw err;
      await flight.done;
      return sendBlobFd(ctx, openSync(this.store.blobPath(digest), 'r'), digest);
    }
    try {
      await follow(ctx, flight, fd, digest);
    } finally {
      closeSync(fd);
    }
  }
}

function sendHead(ctx: Ctx, digest: string, size: number): void {
  ctx.res.writeHead(200, { 'docker-content-digest': digest, 'content-length': String(size), 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' });
  ctx.res.end();
}

/**
 * One upstream fetch of a blob into the store, through the same ingest transaction as
 * `dist pull` (ref `<host>/<repo>@<digest>`), so a pull into the same store shares it too.
 * `written` is how many bytes of the ingest file are on disk; listeners hear of each write.
 */
class Flight {
  size = -1;
  written = 0;
  dataPath: string | undefined;
  failed: unknown;
  committed = false;
  readonly ready: Promise<void>;
  readonly done: Promise<void>;
  private wake: (() => void)[] = [];

  constructor(store: Store, client: RegistryClient, loc: Locator, digest: string, signal: AbortSignal) {
    let opened!: () => void;
    let notOpened!: (err: unknown) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      opened = resolve;
      notOpened = reject;
    });
    this.ready.catch(() => {});
    const ref = `${loc.host}/${loc.repository}@${digest}`;
    this.done = (async () => {
      const { descriptor, body } = await openBlob(client, loc, digest, { signal });
      this.size = descriptor.size;
      // The body lends its chunks to writeBlob, as in dist pull: each is hashed and written to
      // the ingest file as it arrives, and onWrite then wakes the clients following it.
      const result = await writeBlob(store, () => body, {
        ref,
        expected: digest,
        size: this.size >= 0 ? this.size : undefined,
        signal,
        onOpen: (held) => {
          this.written = held;
          this.dataPath = join(store.ingestDir(ref), 'data');
          opened();
        },
        onWrite: (n) => {
          this.written += n;
          this.notify();
        },
      });
      if (result.existed) body.destroy();
      this.committed = true;
    })().then(
      () => {
        opened();
        this.notify();
      },
      (err) => {
        this.failed = err ?? new Error('mirror fetch failed');
        notOpened(err);
        this.notify();
        throw err;
      },
    );
  }

  /** Resolves at the next write, commit or failure. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.wake.push(resolve));
  }

  private notify(): void {
    const w = this.wake;
    this.wake = [];
    for (const fn of w) fn();
  }
}

/**
 * Streams a blob in flight from its ingest file: everything on disk but the last byte, which
 * waits for the commit (so only verified content is ever delivered whole). A failed flight
 * destroys the response mid-body.
 */
async function follow(ctx: Ctx, flight: Flight, fd: number, digest: string): Promise<void> {
  const { res } = ctx;
  const size = flight.size;
  if (size === 0) await flight.done;
  res.writeHead(200, { 'docker-content-digest': digest, 'content-length': String(size), 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' });
  let closed = false;
  res.once('close', () => {
    closed = true;
  });
  let pos = 0;
  while (pos < size && !closed) {
    if (flight.failed !== undefined) {
      res.destroy();
      return;
    }
    const limit = flight.committed ? size : Math.min(flight.written, size - 1);
    if (pos >= limit) {
      await flight.changed();
      continue;
    }
    const buf = Buffer.allocUnsafe(Math.min(limit - pos, FOLLOW_CHUNK));
    const n = await new Promise<number>((resolve, reject) => read(fd, buf, 0, buf.length, pos, (err, got) => (err ? reject(err) : resolve(got))));
    if (n === 0) {
      await flight.changed();
      continue;
    }
    pos += n;
    if (!res.write(buf.subarray(0, n))) {
      await new Promise<void>((resolve) => {
        const go = () => {
          res.off('drain', go).off('close', go);
          resolve();
        };
        res.once('drain', go).once('close', go);
      });
    }
  }
  if (!closed) res.end();
}

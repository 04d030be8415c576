import { Readable } from 'node:stream';
import { digestOf, parseDigest } from '../digest.js';
import { DistError } from '../errors.js';
import { MANIFEST_TYPES, MAX_MANIFEST_BYTES, type Descriptor } from '../image/mediatypes.js';
import { canLend, type Lending } from '../lend.js';
import { statusError, type RegistryClient, type Response } from './client.js';
import type { Locator } from './locator.js';
import { header } from './transport.js';

/** A fetched object: its descriptor and a body stream the caller must consume. */
export interface Fetched {
  descriptor: Descriptor;
  body: Readable;
}

function what(loc: Locator, reference: string): string {
  return `${loc.host}/${loc.repository}${reference.includes(':') ? '@' : ':'}${reference}`;
}

/**
 * Resolves a tag or digest to the manifest's descriptor: HEAD first (cheap; Docker Hub does
 * not count it against rate limits), then GET when HEAD gives no digest.
 * Errors: ENOENT (unknown manifest), EREMOTE, EINTEGRITY, EINVAL (over 4 MiB, not JSON).
 */
export async function resolve(client: RegistryClient, loc: Locator, reference: string, accept: readonly string[] = MANIFEST_TYPES, signal?: AbortSignal): Promise<Descriptor> {
  const res = await client.request(loc, {
    method: 'HEAD',
    path: `/v2/${loc.repository}/manifests/${reference}`,
    headers: { accept: accept.join(', ') },
    signal,
  });
  await res.body.dump();
  if (res.statusCode === 200) {
    const digest = header(res, 'docker-content-digest');
    const size = Number(header(res, 'content-length'));
    const mediaType = header(res, 'content-type')?.split(';')[0]?.trim();
    if (digest && Number.isSafeInteger(size) && mediaType && (!reference.includes(':') || digest === reference)) {
      parseDigest(digest);
      if (size > MAX_MANIFEST_BYTES) throw tooLarge(loc, reference, size);
      return { mediaType, digest, size };
    }
  } else if (res.statusCode === 404) {
    throw new DistError('ENOENT', `${what(loc, reference)}: manifest not found`);
  }
  return (await fetchManifest(client, loc, reference, accept, signal)).descriptor;
}

function tooLarge(loc: Locator, reference: string, size: number | string): DistError {
  return new DistError('EINVAL', `${what(loc, reference)}: manifest of ${size} bytes is over the 4 MiB limit`);
}

/**
 * Fetches a manifest or index, bounded to 4 MiB, verified against the digest it was asked by
 * (or the registry's Docker-Content-Digest for a tag), and checked to be a JSON object.
 */
export async function fetchManifest(
  client: RegistryClient,
  loc: Locator,
  reference: string,
  accept: readonly string[] = MANIFEST_TYPES,
  signal?: AbortSignal,
): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
  const res = await client.request(loc, {
    path: `/v2/${loc.repository}/manifests/${reference}`,
    headers: { accept: accept.join(', ') },
    signal,
  });
  if (res.statusCode !== 200) {
    if (res.statusCode === 404) {
      await res.body.dump();
      throw new DistError('ENOENT', `${what(loc, reference)}: manifest not found`);
    }
    throw await statusError(res, what(loc, reference));
  }
  const length = Number(header(res, 'content-length'));
  if (length > MAX_MANIFEST_BYTES) {
    res.body.destroy();
    throw tooLarge(loc, reference, length);
  }
  const bytes = await readBounded(res.body, MAX_MANIFEST_BYTES, () => tooLarge(loc, reference, `more than ${MAX_MANIFEST_BYTES}`));
  const wanted = reference.includes(':') ? parseDigest(reference) : undefined;
  const algorithm = wanted?.algorithm ?? 'sha256';
  const digest = digestOf(bytes, algorithm);
  if (wanted && digest !== wanted.text) {
    throw new DistError('EINTEGRITY', `${what(loc, reference)}: digest mismatch: the registry sent ${digest}`, { digest: wanted.text, found: digest });
  }
  const claimed = header(res, 'docker-content-digest');
  if (!wanted && claimed && claimed.startsWith('sha256:') && claimed !== digest) {
    throw new DistError('EINTEGRITY', `${what(loc, reference)}: the registry says ${claimed} but sent ${digest}`, { digest: claimed, found: digest });
  }
  let doc: { mediaType?: unknown };
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new DistError('EINVAL', `${what(loc, reference)}: manifest is not valid JSON`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new DistError('EINVAL', `${what(loc, reference)}: manifest is not a JSON object`);
  }
  const mediaType = (typeof doc.mediaType === 'string' ? doc.mediaType : undefined) ?? header(res, 'content-type')?.split(';')[0]?.trim() ?? 'application/octet-stream';
  return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
}

export interface BlobOptions {
  /** Start at this byte (HTTP Range). */
  offset?: number;
  /** The blob's size when known: a body that ends early is then resumed too. */
  size?: number;
  signal?: AbortSignal;
  /** Resumes after a broken body (default 5). */
  maxResumes?: number;
  /** Called when a broken body is resumed: `from` is the blob offset asked for. */
  onResume?: (info: { from: number; honoured: boolean; reason: string }) => void;
}

/**
 * Opens a blob as a stream of its bytes from `offset`. A body that breaks midway is
 * re-requested with Range from the last byte delivered; a server that answers 200 instead of
 * 206 has the bytes already delivered skipped. The stream's bytes are not verified here: the
 * caller hashes what it writes (fetch and ingest both do).
 * Errors: ENOENT (404), EREMOTE, EBADSIZE (the server's length disagrees with `size`).
 */
export async function openBlob(client: RegistryClient, loc: Locator, digest: string, opts: BlobOptions = {}): Promise<Fetched & { status: number; body: Readable & Lending }> {
  parseDigest(digest);
  const start = opts.offset ?? 0;
  const first = await requestBlob(client, loc, digest, start, opts.signal);
  let total = opts.size;
  const len = Number(header(first.res, 'content-length'));
  if (total === undefined && Number.isSafeInteger(len)) total = first.skip + len;
  if (opts.size !== undefined && Number.isSafeInteger(len) && first.skip + len !== opts.size) {
    first.res.body.destroy();
    throw new DistError('EBADSIZE', `${digest}: the registry serves ${first.skip + len} bytes, the descriptor says ${opts.size}`, { digest });
  }
  return {
    status: first.res.statusCode,
    descriptor: { mediaType: header(first.res, 'content-type') ?? 'application/octet-stream', digest, size: total ?? -1 },
    body: new ResumingBody(first, start, total, (pos) => requestBlob(client, loc, digest, pos, opts.signal), {
      digest,
      maxResumes: opts.maxResumes ?? 5,
      signal: opts.signal,
      onResume: opts.onResume,
    }),
  };
}

/**
 * A blob's bytes from `start`, across as many GETs as it takes. Read it as a stream, or lend
 * it (lib/lend.ts): chunks then go from undici's dispatch handler to the caller with no
 * stream in between. As a stream, chunks flow from the socket straight into this stream, with backpressure
 * passed back by pausing the response: an async generator here cost a promise per chunk and a
 * copy of whatever had queued (profiled, ~30 ms of CPU per 64 MiB in a process doing nothing
 * else). Nothing is requested beyond the first response until the body is read or lent.
 */
class ResumingBody extends Readable implements Lending {
  private res: Response;
  private skip: number;
  private pos: number;
  private resumes = 0;
  private attached = false;
  private lender: ((chunk: Buffer) => void) | undefined;
  /** The lender threw: that error ends the body, and nothing is resumed. */
  private lenderError: { error: unknown } | undefined;
  private settle: { resolve: () => void; reject: (err: unknown) => void } | undefined;

  constructor(
    first: { res: Response; skip: number },
    start: number,
    private readonly total: number | undefined,
    private readonly again: (pos: number) => Promise<{ res: Response; skip: number }>,
    private readonly opts: { digest: string; maxResumes: number; signal?: AbortSignal; onResume?: BlobOptions['onResume'] },
  ) {
    super({ highWaterMark: 1 << 20 });
    this.res = first.res;
    this.skip = start - first.skip; // bytes of this body before `start` (the server ignored Range)
    this.pos = start;
  }

  lend(onChunk: (chunk: Buffer) => void): Promise<void> {
    if (this.attached) return Promise.reject(new Error('the blob body is already being read'));
    return new Promise<void>((resolve, reject) => {
      this.lender = onChunk;
      this.settle = { resolve, reject };
      this.attach();
    });
  }

  private attach(): void {
    this.attached = true;
    const body = this.res.body;
    const lending = this.lender !== undefined && canLend(body);
    const onData = (raw: Buffer) => {
      let chunk = raw;
      if (this.skip > 0) {
        if (chunk.length <= this.skip) {
          this.skip -= chunk.length;
          return;
        }
        chunk = chunk.subarray(this.skip);
        this.skip = 0;
      }
      this.pos += chunk.length;
      if (!this.lender) {
        if (!this.push(chunk)) body.pause();
        return;
      }
      try {
        this.lender(chunk);
      } catch (error) {
        this.lenderError = { error };
        // A lending body stops reading and rejects; a stream is destroyed, then 'error'.
        if (lending) throw error;
        body.destroy(error as Error);
      }
    };
    const done = (err?: Error) => {
      body.off('data', onData).off('end', onEnd).off('error', done);
      if (this.destroyed) {
        this.settle?.reject(err ?? new Error('the blob body was closed'));
        return;
      }
      if (this.lenderError) return this.fail(this.lenderError.error as Error);
      if (!err && (this.total === undefined || this.pos >= this.total)) {
        if (this.settle) this.settle.resolve();
        else this.push(null);
        return;
      }
      if (err && this.opts.signal?.aborted) return this.fail(err);
      this.reopen(err ? ((err as { code?: string }).code ?? err.message) : `body ended at byte ${this.pos} of ${this.total}`);
    };
    const onEnd = () => done();
    if (lending) {
      body.lend(onData).then(() => done(), done);
    } else {
      body.on('data', onData).once('end', onEnd).once('error', done);
    }
  }

  private fail(err: Error): void {
    if (this.settle) {
      this.settle.reject(err);
      this.destroy();
    } else {
      this.destroy(err);
    }
  }

  private reopen(reason: string): void {
    const { digest, maxResumes } = this.opts;
    if (this.resumes++ >= maxResumes) {
      this.fail(new DistError('EREMOTE', `${digest}: download broke at byte ${this.pos} (${reason}); gave up after ${maxResumes} resumes`, { digest, offset: this.pos }));
      return;
    }
    this.again(this.pos).then(
      (next) => {
        if (this.destroyed) {
          next.res.body.destroy();
          return;
        }
        this.opts.onResume?.({ from: this.pos, honoured: next.skip === this.pos, reason });
        this.res = next.res;
        this.skip = this.pos - next.skip;
        this.attach();
      },
      (err: Error) => this.fail(err),
    );
  }

  override _read(): void {
    if (!this.attached) this.attach();
    else this.res.body.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.res.body.destroy();
    callback(err);
  }
}

/**
 * A small blob read whole into memory, resumed like `openBlob`, and bounded by `size`: a
 * body that runs longer fails with EBADSIZE without being read further. Not verified here.
 */
export async function readBlob(client: RegistryClient, loc: Locator, digest: string, size: number, signal?: AbortSignal): Promise<Buffer> {
  const { body } = await openBlob(client, loc, digest, { size, signal });
  return readBounded(body, size, () => new DistError('EBADSIZE', `${digest}: the registry sent more than the ${size} bytes the descriptor says`, { digest }));
}

/** Reads a body whole, failing with `tooLong()` (and reading no further) past `limit` bytes. */
async function readBounded(body: Readable, limit: number, tooLong: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  const take = (c: Buffer) => {
    n += c.length;
    if (n > limit) throw tooLong();
    chunks.push(Buffer.from(c));
  };
  if (canLend(body)) {
    await body.lend(take);
  } else {
    try {
      for await (const c of body) take(c as Buffer);
    } finally {
      body.destroy();
    }
  }
  return Buffer.concat(chunks, n);
}

/** One GET of a blob from `from`. `skip`: the blob offset the body starts at (0 if Range was ignored). */
async function requestBlob(client: RegistryClient, loc: Locator, digest: string, from: number, signal?: AbortSignal): Promise<{ res: Response; skip: number }> {
  const res = await client.request(loc, {
    path: `/v2/${loc.repository}/blobs/${digest}`,
    headers: from > 0 ? { range: `bytes=${from}-` } : {},
    signal,
  });
  if (res.statusCode === 206) {
    const m = /bytes (\d+)-/.exec(header(res, 'content-range') ?? '');
    const at = m ? Number(m[1]) : from;
    if (at !== from) {
      res.body.destroy();
      throw new DistError('EREMOTE', `${digest}: asked for bytes from ${from}, the server sent from ${at}`);
    }
    return { res, skip: from };
  }
  if (res.statusCode === 200) return { res, skip: 0 };
  if (res.statusCode === 404) {
    await res.body.dump();
    throw new DistError('ENOENT', `${loc.host}/${loc.repository}@${digest}: blob not found`, { digest });
  }
  if (res.statusCode === 416) {
    await res.body.dump();
    throw new DistError('EINVAL', `${digest}: offset ${from} is past the end of the blob`, { digest });
  }
  throw await statusError(res, `${loc.host}/${loc.repository}@${digest}`);
}

/** A page of 1000 tags is ~100 KiB; past this the registry is not sending tags. */
const TAG_PAGE_LIMIT = 4 << 20;

/**
 * Lists a repository's tags, following the registry's `Link: <...>; rel="next"` pages.
 * Errors: ENOENT (unknown repository), EREMOTE.
 */
export async function* listTags(client: RegistryClient, loc: Locator, pageSize = 1000, signal?: AbortSignal): AsyncGenerator<string> {
  let path: string | undefined = `/v2/${loc.repository}/tags/list?n=${pageSize}`;
  while (path) {
    const res = await client.request(loc, { path, signal });
    if (res.statusCode !== 200) {
      if (res.statusCode === 404) {
        await res.body.dump();
        throw new DistError('ENOENT', `${loc.host}/${loc.repository}: repository not found`);
      }
      throw await statusError(res, `${loc.host}/${loc.repository}`);
    }
    const body = (await res.body.json(TAG_PAGE_LIMIT, client.bodyDeadlineMs, `${loc.host}/${loc.repository}: tag list`)) as { tags?: string[] | null };
    for (const t of body.tags ?? []) yield t;
    const link = header(res, 'link');
    const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
    path = m ? (m[1]!.startsWith('/') ? m[1] : new URL(m[1]!).pathname + new URL(m[1]!).search) : undefined;
  }
}

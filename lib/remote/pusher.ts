import { setMaxListeners } from 'node:events';
import { Readable, Transform } from 'node:stream';
import pLimit from 'p-limit';
import { hasher, parseDigest } from '../digest.js';
import { DistError, isDistError } from '../errors.js';
import { sleep } from '../sleep.js';
import { errorText, parseRetryAfter, retryable, statusError, type RegistryClient, type Response } from './client.js';
import type { Locator } from './locator.js';
import { header } from './transport.js';
import type { Descriptor } from '../image/mediatypes.js';

/**
 * Blobs up to this size go in one PUT with the bytes in memory (re-sendable, so the client's
 * own retries apply). Larger ones are streamed in PATCH chunks that survive a reset.
 */
const SMALL_UPLOAD = 1 << 20;

/**
 * The size of one PATCH when pushing from the store. A reset costs at most one chunk; each
 * chunk costs distribution one request and a saved hash state. Not tuned by measurement yet:
 * 8 x 64 MiB to a loopback docker-registry 2.8 with 8 MiB, 32 MiB and whole-blob PATCHes took
 * 7.2, 7.8 and 5.6 s once each, on a machine at load ~18 from other work: noise, not a ranking.
 */
const PUSH_CHUNK = 32 << 20;

/** Times a broken upload is resumed (or restarted when the registry lost it) before giving up. */
const MAX_RESUMES = 6;


/** Where a blob's bytes come from: the store (a file) or another registry (a stream). */
export interface BlobSource {
  /** The bytes [start, end) of the blob. Called again from an offset after a reset. */
  open(start: number, end: number): Readable | Promise<Readable>;
}

/**
 * What a push or copy reports, one event per step: a blob found (`exists`), mounted, started and
 * done (`sent` bytes on the wire), upload progress every MiB, a resume after a reset or a
 * retryable status (`offset` is where the registry stood), each manifest put, and the totals.
 */
export type PushEvent =
  | { event: 'blob'; status: 'exists' | 'mounted' | 'start' | 'done'; kind: string; digest: string; size: number; sent?: number; from?: string; resumedFrom?: number }
  | { event: 'progress'; digest: string; bytes: number; size: number }
  | { event: 'resume'; digest: string; offset: number; reason: string }
  | { event: 'manifest'; digest: string; mediaType: string; size: number; reference: string }
  | { event: 'done'; ref: string; digest: string; blobs: number; uploaded: number; mounted: number; existing: number; sent: number };

export interface PushBlobOptions {
  /** Repositories of the same registry that hold the blob: tried in turn as mount sources. */
  mountFrom?: string[];
  /** PATCH size for large blobs (default PUSH_CHUNK). Infinity: one PATCH, resumed on reset. */
  chunkSize?: number;
  kind?: string;
  signal?: AbortSignal;
  onEvent?: (e: PushEvent) => void;
}

export interface PushBlobResult {
  how: 'exists' | 'mounted' | 'uploaded';
  /** Body bytes put on the wire for this blob (re-sent bytes count again). */
  sent: number;
}

/** True when the registry has the blob (HEAD). */
async function blobExists(client: RegistryClient, loc: Locator, digest: string, signal?: AbortSignal): Promise<boolean> {
  const res = await client.request(loc, { method: 'HEAD', path: `/v2/${loc.repository}/blobs/${digest}`, access: 'push', signal });
  await res.body.dump();
  if (res.statusCode === 200) return true;
  if (res.statusCode === 404) return false;
  throw await statusError(res, `${loc.host}/${loc.repository}@${digest}`);
}

/**
 * Uploads one blob unless the registry has it:
 * 1. HEAD; 2. a cross-repository mount from each of `mountFrom` (a 202 answer is a normal
 *    session, used as is; a refused mount, 401/403 included, falls back to a plain POST);
 * 3. a monolithic PUT for small blobs, else PATCH chunks with Content-Range, each to the newest
 *    Location. A reset or a 408/429/5xx asks the registry where it stands (GET on the upload
 *    URL) and carries on from its offset; a session the registry lost starts again. Where the
 *    first PATCH is refused (405/501), the whole blob goes in one PUT.
 * The bytes are hashed as they are sent and checked against the digest before the closing PUT.
 *
 * Errors: EREMOTE (the registry refused, a Location on another host, retries exhausted),
 * ENOENT (404 on PATCH/PUT: the registry forgot the upload), EINTEGRITY (the source's bytes do
 * not match the digest).
 */
export async function pushBlob(client: RegistryClient, loc: Locator, desc: Descriptor, source: BlobSource, opts: PushBlobOptions = {}): Promise<PushBlobResult> {
  const { signal } = opts;
  const emit = opts.onEvent ?? (() => {});
  const kind = opts.kind ?? 'blob';
  const what = `${loc.host}/${loc.repository}@${desc.digest}`;
  if (await blobExists(client, loc, desc.digest, signal)) {
    emit({ event: 'blob', status: 'exists', kind, digest: desc.digest, size: desc.size });
    return { how: 'exists', sent: 0 };
  }
  const upload = new Upload(client, loc, desc, source, what, opts);
  for (const from of opts.mountFrom ?? []) {
    if (from === loc.repository) continue;
    const mounted = await upload.mount(from);
    if (mounted) {
      emit({ event: 'blob', status: 'mounted', kind, digest: desc.digest, size: desc.size, from });
      return { how: 'mounted', sent: 0 };
    }
    if (upload.location) break; // the registry started a normal session instead: use it
  }
  emit({ event: 'blob', status: 'start', kind, digest: desc.digest, size: desc.size });
  await upload.send();
  emit({ event: 'blob', status: 'done', kind, digest: desc.digest, size: desc.size, sent: upload.sent });
  return { how: 'uploaded', sent: upload.sent };
}

/** One upload session's state: its newest Location, the registry's offset, the running hash. */
class Upload {
  location: string | undefined;
  sent = 0;
  private hash;
  /** Bytes fed to the hash, in order; bytes re-sent after a resume are not hashed twice. */
  private hashed = 0;
  private reported = 0;
  private readonly origin: string;

  constructor(
    private readonly client: RegistryClient,
    private readonly loc: Locator,
    private readonly desc: Descriptor,
    private readonly source: BlobSource,
    private readonly what: string,
    private readonly opts: PushBlobOptions,
  ) {
    this.hash = hasher(parseDigest(desc.digest).algorithm);
    this.origin = `${loc.scheme}://${loc.endpoint}`;
  }

  /** Tries a mount; true when mounted, else a session may have begun (this.location). */
  async mount(from: string): Promise<boolean> {
    let res: Response;
    try {
      // The token must also let us read the source repository.
      res = await this.request('POST', `/v2/${this.loc.repository}/blobs/uploads/?mount=${encodeURIComponent(this.desc.digest)}&from=${encodeURIComponent(from)}`, { retry: true, extraScopes: [`repository:${from}:pull`] });
    } catch (err) {
      // A token without pull on the source, or a source we may not read: upload instead
      // (containerd does the same; Harbor and Docker Hub answer 401 here).
      if (isDistError(err, 'EREMOTE') && (err.data.status === 401 || err.data.status === 403)) return false;
      throw err;
    }
    if (res.statusCode === 201) {
      await res.body.dump();
      return true;
    }
    if (res.statusCode === 202) {
      await res.body.dump();
      this.location = this.next(res);
      return false;
    }
    await res.body.dump();
    return false;
  }

  /** Starts a session (POST) unless a refused mount left one. */
  private async start(): Promise<void> {
    const res = await this.request('POST', `/v2/${this.loc.repository}/blobs/uploads/`, { retry: true, headers: { 'content-length': '0' } });
    if (res.statusCode !== 202) throw await statusError(res, `${this.what}: starting the upload`);
    await res.body.dump();
    this.location = this.next(res);
  }

  async send(): Promise<void> {
    if (!this.location) await this.start();
    const { size } = this.desc;
    if (size <= SMALL_UPLOAD) return this.putWhole(true);
    let offset = 0;
    let failures = 0;
    const chunk = this.opts.chunkSize ?? PUSH_CHUNK;
    let first = true;
    while (offset < size) {
      const end = Math.min(size, offset + chunk);
      let res: Response | undefined;
      let reason: string;
      try {
        res = await this.request('PATCH', this.location!, {
          retry: false,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(end - offset), 'content-range': `${offset}-${end - 1}` },
          body: await this.body(offset, end),
        });
        if (res.statusCode === 202 || res.statusCode === 201 || res.statusCode === 204) {
          await res.body.dump();
          this.location = this.next(res);
          offset = end;
          first = false;
          continue;
        }
        if (first && (res.statusCode === 405 || res.statusCode === 501)) {
          // No chunked uploads here (Google Artifact Registry): the whole blob in one PUT.
          await res.body.dump();
          return this.putWhole(false);
        }
        if (res.statusCode === 404) throw await this.forgotten(res, 'PATCH');
        if (!retryable(res.statusCode) && res.statusCode !== 416) throw await statusError(res, `${this.what}: upload chunk ${offset}-${end - 1}`);
        reason = `${res.statusCode} ${await errorText(res)}`.trim();
      } catch (err) {
        if (this.opts.signal?.aborted || !isDistError(err, 'EREMOTE') || err.data.status !== undefined) throw err;
        reason = err.message;
      }
      if (++failures > MAX_RESUMES) throw new DistError('EREMOTE', `${this.what}: upload broke at byte ${offset} (${reason}); gave up after ${MAX_RESUMES} resumes`, { digest: this.desc.digest });
      await sleep(res ? Math.max(parseRetryAfter(res.headers['retry-after']) ?? 0, 100 * failures) : 100 * failures, this.opts.signal);
      offset = await this.status();
      this.opts.onEvent?.({ event: 'resume', digest: this.desc.digest, offset, reason });
    }
    this.checkDigest();
    await this.close(undefined);
  }

  /**
   * Where the registry stands: GET on the upload URL gives its offset (Range: 0-<last>) and a
   * fresh Location. A session it no longer knows starts again from byte 0 with a new POST.
   */
  private async status(): Promise<number> {
    const res = await this.request('GET', this.location!, { retry: true });
    if (res.statusCode === 204 || res.statusCode === 202) {
      await res.body.dump();
      this.location = this.next(res);
      const m = /^(?:bytes=)?0-(\d+)$/.exec(header(res, 'range') ?? '');
      // distribution answers `0-0` for an empty upload too: read it as nothing held (a
      // registry that did hold one byte fails the closing PUT's digest check instead).
      return m && m[1] !== '0' ? Number(m[1]) + 1 : 0;
    }
    await res.body.dump();
    this.location = undefined;
    await this.start();
    return 0;
  }

  /** The source's bytes [start, end), counted and hashed (in order, once) on the way out. */
  private async body(start: number, end: number): Promise<Readable> {
    const src = await this.source.open(start, end);
    let pos = start;
    const counter = new Transform({
      transform: (c: Buffer, _enc, cb) => {
        if (pos + c.length > this.hashed && pos <= this.hashed) this.hash.update(c.subarray(this.hashed - pos));
        pos += c.length;
        if (pos > this.hashed) this.hashed = pos;
        this.sent += c.length;
        if (pos - this.reported >= 1 << 20 || pos === this.desc.size) {
          this.reported = pos;
          this.opts.onEvent?.({ event: 'progress', digest: this.desc.digest, bytes: pos, size: this.desc.size });
        }
        cb(null, c);
      },
    });
    src.on('error', (err) => counter.destroy(err));
    // A request that breaks stops reading its body: the source must not stay open behind it.
    counter.on('close', () => src.destroy());
    return src.pipe(counter);
  }

  private checkDigest(): void {
    const got = `${parseDigest(this.desc.digest).algorithm}:${this.hash.digest('hex')}`;
    if (this.hashed !== this.desc.size || got !== this.desc.digest) {
      void this.cancel();
      throw new DistError('EINTEGRITY', `${this.desc.digest}: the bytes sent hash to ${got} (${this.hashed} bytes, the descriptor says ${this.desc.size})`, { digest: this.desc.digest, found: got });
    }
  }

  /** A whole blob in the closing PUT: from memory when small (re-sendable), else streamed. */
  private async putWhole(small: boolean): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (small) {
        const chunks: Buffer[] = [];
        for await (const c of await this.body(0, this.desc.size)) chunks.push(c as Buffer);
        this.checkDigest();
        return this.close(Buffer.concat(chunks));
      }
      try {
        this.hash = hasher(parseDigest(this.desc.digest).algorithm);
        this.hashed = 0;
        return await this.close(await this.body(0, this.desc.size), () => this.checkDigest());
      } catch (err) {
        if (attempt >= MAX_RESUMES || this.opts.signal?.aborted || !isDistError(err, 'EREMOTE') || (err.data.status !== undefined && !retryable(err.data.status as number))) throw err;
        await sleep(100 * attempt, this.opts.signal);
        this.location = undefined;
        await this.start();
      }
    }
  }

  /** The closing PUT with `digest=` added to the Location's query, exactly as given otherwise. */
  private async close(body: Buffer | Readable | undefined, before?: () => void): Promise<void> {
    const loc = this.location!;
    const path = `${loc}${loc.includes('?') ? '&' : '?'}digest=${encodeURIComponent(this.desc.digest)}`;
    const length = body === undefined ? 0 : Buffer.isBuffer(body) ? body.length : this.desc.size;
    const res = await this.request('PUT', path, {
      retry: body === undefined || Buffer.isBuffer(body),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
      body: body ?? Buffer.alloc(0),
    });
    before?.();
    if (res.statusCode === 201 || res.statusCode === 204) {
      await res.body.dump();
      return;
    }
    if (res.statusCode === 404) {
      // GHCR answers a retried commit that had landed with BLOB_UPLOAD_UNKNOWN: ask first.
      if (await blobExists(this.client, this.loc, this.desc.digest, this.opts.signal)) {
        await res.body.dump();
        return;
      }
      throw await this.forgotten(res, 'PUT');
    }
    throw await statusError(res, `${this.what}: closing the upload`);
  }

  private async forgotten(res: Response, method: string): Promise<DistError> {
    const detail = await errorText(res);
    return new DistError('EREMOTE', `${this.what}: the registry forgot the upload (404 on ${method}${detail ? `: ${detail}` : ''})`, { status: 404, digest: this.desc.digest });
  }

  /** Cancels the session; failures are ignored (distribution wants the delete action for it). */
  private async cancel(): Promise<void> {
    if (!this.location) return;
    try {
      const res = await this.request('DELETE', this.location, { retry: false });
      await res.body.dump();
    } catch {
      /* best effort */
    }
  }

  /** The next Location, resolved against the registry; one on another host is refused. */
  private next(res: Response): string {
    const raw = header(res, 'location');
    if (!raw) throw new DistError('EREMOTE', `${this.what}: the registry sent no Location for the upload`);
    const base = this.location ? new URL(this.location, this.origin) : new URL(`${this.origin}/v2/${this.loc.repository}/blobs/uploads/`);
    const u = new URL(raw, base);
    if (u.origin !== this.origin) {
      throw new DistError('EREMOTE', `${this.what}: the registry sent an upload Location on another host (${u.host}); refusing to send the blob there`, { digest: this.desc.digest });
    }
    // Path and query exactly as given (critical query parameters, _state, ...).
    const q = raw.indexOf('?');
    return `${u.pathname}${q >= 0 ? raw.slice(q) : ''}`;
  }

  private request(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', path: string, o: { retry: boolean; headers?: Record<string, string>; body?: Buffer | Readable; extraScopes?: string[] }): Promise<Response> {
    return this.client.request(this.loc, { method, path, access: 'push', signal: this.opts.signal, ...o });
  }
}

/**
 * Puts a manifest or index (its exact bytes) under `reference`, a tag or its digest.
 * Errors: EREMOTE naming the registry's answer; a 413 says the manifest is over its limit.
 */
export async function pushManifest(client: RegistryClient, loc: Locator, reference: string, mediaType: string, bytes: Buffer, signal?: AbortSignal): Promise<string | undefined> {
  const res = await client.request(loc, {
    method: 'PUT',
    path: `/v2/${loc.repository}/manifests/${reference}`,
    access: 'push',
    headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
    body: bytes,
    signal,
  });
  if (res.statusCode === 201 || res.statusCode === 200 || res.statusCode === 202) {
    await res.body.dump();
    return header(res, 'docker-content-digest');
  }
  const where = `${loc.host}/${loc.repository}${reference.includes(':') ? '@' : ':'}${reference}`;
  if (res.statusCode === 413) {
    const detail = await errorText(res);
    throw new DistError('EREMOTE', `${where}: the manifest (${bytes.length} bytes) is over the registry's size limit (413${detail ? ` ${detail}` : ''})`, { status: 413 });
  }
  throw await statusError(res, `${where}: manifest rejected`);
}

/** A manifest or index to push: its descriptor and exact bytes. */
export interface ManifestBytes {
  descriptor: Descriptor;
  bytes: Buffer;
}

/** What one push or copy sends: the blobs, the child manifests, the top object. */
export interface PushPlan {
  top: ManifestBytes;
  /** An index's children (none for a single manifest), pushed by digest before the top. */
  children: ManifestBytes[];
  /** Every config and layer, once each. */
  blobs: { descriptor: Descriptor; kind: string }[];
  /** Where each blob's bytes come from. */
  source(desc: Descriptor): BlobSource;
  /** Repositories of the target registry that hold the blob (mount sources). */
  mountFrom?(desc: Descriptor): string[];
  /** PATCH size for large blobs. */
  chunkSize?: number;
}

export interface PushImageOptions {
  /** Blob uploads at once. */
  concurrency: number;
  /** The tag to put the top object under; without one it is pushed by digest only. */
  tag?: string;
  signal?: AbortSignal;
  onEvent?: (e: PushEvent) => void;
}

export interface PushImageResult {
  digest: string;
  uploaded: number;
  mounted: number;
  existing: number;
  /** Blob bytes put on the wire. */
  sent: number;
}

/**
 * Pushes a plan in the order that never leaves a tag on a partial image: every blob
 * (`concurrency` at a time; the first failure stops the rest), then the child manifests by
 * digest, then the top object, by tag when there is one. Errors: those of pushBlob and
 * pushManifest.
 */
export async function pushImage(client: RegistryClient, loc: Locator, plan: PushPlan, opts: PushImageOptions): Promise<PushImageResult> {
  const stopper = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stopper.signal]) : stopper.signal;
  setMaxListeners(Math.max(10, 4 * opts.concurrency + 10), signal);
  const limit = pLimit(Math.max(1, opts.concurrency));
  const result: PushImageResult = { digest: plan.top.descriptor.digest, uploaded: 0, mounted: 0, existing: 0, sent: 0 };
  const tasks = plan.blobs.map(({ descriptor, kind }) =>
    limit(async () => {
      signal.throwIfAborted();
      const r = await pushBlob(client, loc, descriptor, plan.source(descriptor), { mountFrom: plan.mountFrom?.(descriptor), chunkSize: plan.chunkSize, kind, signal, onEvent: opts.onEvent });
      result.sent += r.sent;
      if (r.how === 'exists') result.existing++;
      else if (r.how === 'mounted') result.mounted++;
      else result.uploaded++;
    }),
  );
  try {
    await Promise.all(tasks);
  } catch (err) {
    stopper.abort(new DistError('EREMOTE', 'push stopped: another blob failed'));
    await Promise.allSettled(tasks);
    throw err;
  }
  const put = async (m: ManifestBytes, reference: string) => {
    await pushManifest(client, loc, reference, m.descriptor.mediaType, m.bytes, signal);
    opts.onEvent?.({ event: 'manifest', digest: m.descriptor.digest, mediaType: m.descriptor.mediaType, size: m.bytes.length, reference });
  };
  for (const child of [...plan.children].sort((a, b) => (a.descriptor.digest < b.descriptor.digest ? -1 : 1))) await put(child, child.descriptor.digest);
  await put(plan.top, opts.tag ?? plan.top.descriptor.digest);
  opts.onEvent?.({ event: 'done', ref: `${loc.host}/${loc.repository}${opts.tag ? `:${opts.tag}` : ''}@${result.digest}`, digest: result.digest, blobs: plan.blobs.length, uploaded: result.uploaded, mounted: result.mounted, existing: result.existing, sent: result.sent });
  return result;
}

/** The configs and layers of some manifests, each digest once, in order. */
export function blobsOf(manifests: { descriptor: Descriptor; doc: any }[]): { descriptor: Descriptor; kind: string }[] {
  const seen = new Set<string>();
  const out: { descriptor: Descriptor; kind: string }[] = [];
  for (const { descriptor, doc } of manifests) {
    if (!doc?.config?.digest || !Array.isArray(doc.layers)) throw new DistError('EINVAL', `${descriptor.digest}: not an image manifest (no config or layers)`);
    for (const [d, kind] of [[doc.config, 'config'], ...doc.layers.map((l: Descriptor) => [l, 'layer'])] as [Descriptor, string][]) {
      if (typeof d.digest !== 'string' || !Number.isSafeInteger(d.size) || d.size < 0) throw new DistError('EINVAL', `${descriptor.digest}: malformed descriptor in manifest`);
      parseDigest(d.digest);
      if (seen.has(d.digest)) continue;
      seen.add(d.digest);
      out.push({ descriptor: d, kind });
    }
  }
  return out;
}

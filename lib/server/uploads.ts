import type { IncomingMessage } from 'node:http';
import { digestOf, isDigest } from '../digest.js';
import { DistError, isDistError } from '../errors.js';
import { crypto } from '../lazy.js';
import { openWriter, putBlob, readStatus, syncBlobDirs, type Writer } from '../content/writer.js';
import type { Store } from '../content/store.js';
import { checkName, updateIndex } from '../image/names.js';
import { isIndex, manifestMediaType, MAX_MANIFEST_BYTES, REF_NAME, type Descriptor } from '../image/mediatypes.js';
import { isTag } from '../remote/locator.js';
import { servedAs } from './catalog.js';
import { sendEmpty, type Ctx } from './context.js';
import { RegistryError } from './errors.js';
import { pathDigest } from './read.js';

/** An upload session id: a UUID, as distribution hands out. */
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * A session left idle this long has its writer closed (its bytes kept): an abandoned upload
 * must not hold a file descriptor and a lock for ever. A later request reopens it.
 */
const IDLE_MS = 5 * 60_000;

interface Session {
  writer: Writer;
  /** A request is feeding it: a second one at once is refused, never interleaved. */
  busy: boolean;
  idle?: NodeJS.Timeout;
}

/**
 * Upload sessions (`--push`). A session is an ingest transaction in the store with the ref
 * `dist-serve-upload/<uuid>`: its bytes are in `ingest/`, so `dist active` shows it, it
 * survives a restart of the server (the next request resumes it, re-hashing what is held), and
 * the blob appears under `blobs/` only at the closing PUT, once its digest checks.
 * Within one process a session's writer stays open between requests, so a chunked upload of
 * N chunks hashes its bytes once, not N times.
 */
export class Uploads {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly store: Store) {}

  private static ref(id: string): string {
    return `dist-serve-upload/${id}`;
  }

  /** The session `id`, reopened from the store when this process does not hold it. */
  private async session(id: string): Promise<Session> {
    if (!UPLOAD_ID.test(id)) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'upload unknown');
    let s = this.sessions.get(id);
    if (!s) {
      const ref = Uploads.ref(id);
      const held = await readStatus(this.store.ingestDir(ref));
      if (held.ref !== ref) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id} unknown`);
      const opened = await openWriter(this.store, { ref, wait: false }).catch((err) => {
        if (isDistError(err, 'ELOCKED')) throw new RegistryError('BLOB_UPLOAD_INVALID', `upload ${id} is in use by another process`);
        throw err;
      });
      if (opened.exists) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id} unknown`);
      s = { writer: opened.writer, busy: false };
      this.sessions.set(id, s);
    }
    if (s.busy) throw new RegistryError('BLOB_UPLOAD_INVALID', `upload ${id} is receiving another request`);
    clearTimeout(s.idle);
    return s;
  }

  private release(id: string, s: Session): void {
    s.busy = false;
    if (this.sessions.get(id) !== s) return;
    s.idle = setTimeout(() => {
      this.sessions.delete(id);
      void s.writer.close();
    }, IDLE_MS);
    s.idle.unref();
  }

  private end(id: string, s: Session): void {
    clearTimeout(s.idle);
    this.sessions.delete(id);
  }

  /** Closes every open session's writer, keeping its bytes for a later resume (shutdown). */
  async closeAll(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) {
      clearTimeout(s.idle);
      await s.writer.close().catch(() => {});
    }
  }

  private location(repository: string, id: string): string {
    return `/v2/${repository}/blobs/uploads/${id}`;
  }

  /** The headers that tell a client where a session is and what it holds. */
  private progress(repository: string, id: string, writer: Writer): Record<string, string> {
    return {
      location: this.location(repository, id),
      range: `0-${Math.max(0, writer.offset - 1)}`,
      'docker-upload-uuid': id,
    };
  }

  /**
   * POST /v2/<name>/blobs/uploads/: a cross-repository mount (`?mount=`, 201 when the store
   * has the blob: the store is one namespace), a whole blob in one request (`?digest=` with a
   * body, 201), or a new session (202 + Location).
   */
  async start(ctx: Ctx): Promise<void> {
    const mount = ctx.query.get('mount');
    if (mount && isDigest(mount) && (await this.store.has(mount))) {
      // An unwanted body is read and dropped (here and below), so the keep-alive connection stays usable.
      ctx.req.resume();
      return sendEmpty(ctx, 201, { location: `/v2/${ctx.repository}/blobs/${mount}`, 'docker-content-digest': mount });
    }
    const digest = ctx.query.get('digest');
    const id = crypto().randomUUID();
    const opened = await openWriter(this.store, { ref: Uploads.ref(id) });
    if (opened.exists) throw new Error('a fresh upload session exists already');
    const s: Session = { writer: opened.writer, busy: true };
    this.sessions.set(id, s);
    if (digest !== null && hasBody(ctx.req)) {
      return this.finish(ctx, id, s, pathDigest(digest));
    }
    ctx.req.resume();
    this.release(id, s);
    sendEmpty(ctx, 202, this.progress(ctx.repository, id, s.writer));
  }

  /**
   * PATCH <location>: appends the body. With `Content-Range: <start>-<end>` (chunked) the
   * start must be what the session holds, else 416 with the held Range; without it, the body
   * is appended as it streams (the "streamed" upload Docker and skopeo use).
   */
  async patch(ctx: Ctx): Promise<void> {
    const id = ctx.ref;
    const s = await this.session(id);
    s.busy = true;
    try {
      checkContentRange(ctx, s.writer);
      await receive(ctx.req, s.writer);
    } finally {
      this.release(id, s);
    }
    sendEmpty(ctx, 202, this.progress(ctx.repository, id, s.writer));
  }

  /** GET <location>: where the session stands (204 + Range). */
  async status(ctx: Ctx): Promise<void> {
    const id = ctx.ref;
    const s = await this.session(id);
    this.release(id, s);
    sendEmpty(ctx, 204, this.progress(ctx.repository, id, s.writer));
  }

  /** DELETE <location>: cancels the session and discards its bytes. */
  async cancel(ctx: Ctx): Promise<void> {
    const id = ctx.ref;
    const s = await this.session(id);
    this.end(id, s);
    await s.writer.abort();
    sendEmpty(ctx, 204);
  }

  /** PUT <location>?digest=: appends the last bytes (if any) and commits the blob as that digest. */
  async put(ctx: Ctx): Promise<void> {
    const digest = ctx.query.get('digest');
    if (!digest) throw new RegistryError('DIGEST_INVALID', 'the closing PUT needs ?digest=');
    const expected = pathDigest(digest);
    const id = ctx.ref;
    const s = await this.session(id);
    try {
      checkContentRange(ctx, s.writer);
    } catch (err) {
      this.release(id, s);
      throw err;
    }
    s.busy = true;
    await this.finish(ctx, id, s, expected);
  }

  /**
   * Receives the rest of the body, then commits if the bytes hash to `expected` and discards
   * them if not (DIGEST_INVALID): a blob is visible only once verified. A body that breaks
   * keeps the session for a retry.
   */
  private async finish(ctx: Ctx, id: string, s: Session, expected: string): Promise<void> {
    try {
      await receive(ctx.req, s.writer);
    } catch (err) {
      this.release(id, s);
      throw err;
    }
    this.end(id, s);
    const found = s.writer.heldDigest();
    if (found !== expected) {
      await s.writer.abort();
      throw new RegistryError('DIGEST_INVALID', `the upload's bytes are ${found}, not ${expected}`, { digest: expected });
    }
    await s.writer.commit();
    sendEmpty(ctx, 201, { location: `/v2/${ctx.repository}/blobs/${expected}`, 'docker-content-digest': expected });
  }

  /**
   * PUT /v2/<name>/manifests/<tag|digest>: stores the exact bytes (at most 4 MiB) once every
   * blob and child manifest it names is in the store (else MANIFEST_BLOB_UNKNOWN; a `subject`
   * may be missing), then names it: a tag becomes the name `<name>:<tag>` in index.json,
   * replacing whatever served that tag; a digest gets an unnamed index.json entry, so gc keeps
   * it and the referrers API finds it. `?tag=` on a digest PUT tags it too (OCI-Tag).
   */
  async putManifest(ctx: Ctx): Promise<void> {
    const byDigest = ctx.ref.includes(':');
    const tags = byDigest ? ctx.query.getAll('tag') : [ctx.ref];
    for (const t of tags) if (!isTag(t)) throw new RegistryError('MANIFEST_INVALID', `invalid tag ${JSON.stringify(t.slice(0, 140))}`);
    const bytes = await readBounded(ctx.req, MAX_MANIFEST_BYTES);
    const digest = byDigest ? pathDigest(ctx.ref) : digestOf(bytes);
    if (byDigest && digestOf(bytes, digest.startsWith('sha512:') ? 'sha512' : 'sha256') !== digest) {
      throw new RegistryError('DIGEST_INVALID', `the manifest's bytes do not hash to ${digest}`);
    }
    let doc: any;
    try {
      doc = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new RegistryError('MANIFEST_INVALID', 'the manifest is not JSON');
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new RegistryError('MANIFEST_INVALID', 'the manifest is not a JSON object');
    const contentType = ctx.req.headers['content-type']?.split(';')[0]?.trim();
    const mediaType = manifestMediaType(doc, contentType);
    if (typeof doc.mediaType === 'string' && contentType && contentType !== doc.mediaType) {
      throw new RegistryError('MANIFEST_INVALID', `Content-Type ${contentType} is not the manifest's mediaType ${doc.mediaType}`);
    }
    const children: unknown[] = isIndex(mediaType) || Array.isArray(doc.manifests) ? (doc.manifests ?? []) : [doc.config, ...(Array.isArray(doc.layers) ? doc.layers : [])];
    for (const c of children) {
      const d = (c as Descriptor | undefined)?.digest;
      if (typeof d !== 'string' || !isDigest(d)) throw new RegistryError('MANIFEST_INVALID', 'a descriptor in the manifest has no valid digest');
      if (!(await this.store.has(d))) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `${d}: blob unknown to the registry`, { digest: d });
    }
    await putBlob(this.store, bytes, digest);
    syncBlobDirs(this.store, [digest]);
    const desc: Descriptor = { mediaType, digest, size: bytes.length };
    const names = tags.map((t) => `${ctx.repository}:${t}`);
    for (const n of names) checkName(n);
    await updateIndex(this.store, (ms) => {
      const kept = ms.filter((m) => {
        const name = m.annotations?.[REF_NAME];
        if (name === undefined) return m.digest !== digest;
        const served = servedAs(name);
        return !(served && served.repository === ctx.repository && tags.includes(served.tag));
      });
      const added: Descriptor[] = names.map((n) => ({ ...desc, annotations: { [REF_NAME]: n } }));
      // An unnamed entry only when nothing else in index.json keeps the manifest.
      if (added.length === 0 && !kept.some((m) => m.digest === digest)) added.push(desc);
      return [...kept, ...added];
    });
    const headers: Record<string, string> = { location: `/v2/${ctx.repository}/manifests/${digest}`, 'docker-content-digest': digest };
    if (doc.subject?.digest) headers['oci-subject'] = String(doc.subject.digest);
    if (byDigest && tags.length) headers['oci-tag'] = tags.join(', ');
    sendEmpty(ctx, 201, headers);
  }
}

/** True when the request carries a body (a Content-Length above 0, or chunked). */
function hasBody(req: IncomingMessage): boolean {
  return Number(req.headers['content-length'] ?? 0) > 0 || /chunked/i.test(req.headers['transfer-encoding'] ?? '');
}

/** A chunk's Content-Range must start where the session stands (416 with the held Range if not). */
function checkContentRange(ctx: Ctx, writer: Writer): void {
  const header = ctx.req.headers['content-range'];
  if (!header) return;
  const m = /^(?:bytes )?(\d+)-(\d+)(?:\/\d+|\/\*)?$/.exec(header);
  if (!m || Number(m[1]) !== writer.offset) {
    ctx.req.resume();
    throw new RegistryError('RANGE_INVALID', `Content-Range ${JSON.stringify(header.slice(0, 60))} does not continue the upload at byte ${writer.offset}`, undefined, {
      range: `0-${Math.max(0, writer.offset - 1)}`,
    });
  }
}

/** Streams a request body into the writer, chunk by chunk (the writer's writes are synchronous). */
async function receive(req: IncomingMessage, writer: Writer): Promise<void> {
  for await (const chunk of req) writer.write([chunk as Buffer]);
  if (!req.complete) throw new DistError('EREMOTE', 'the request body broke off');
}

/** A small body read whole, refused (413) past `limit` bytes without reading further. */
async function readBounded(req: IncomingMessage, limit: number): Promise<Buffer> {
  if (Number(req.headers['content-length'] ?? 0) > limit) {
    req.resume();
    throw new RegistryError('TOO_LARGE', `a manifest may have at most ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of req) {
    n += (chunk as Buffer).length;
    if (n > limit) throw new RegistryError('TOO_LARGE', `a manifest may have at most ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, n);
}

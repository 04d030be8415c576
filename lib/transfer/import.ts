import { once } from 'node:events';
import { closeSync, createReadStream, openSync, readSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { Hash } from 'node:crypto';
import { decompressor, peek, sniff, type Compression } from '../archive/decompress.js';
import { tar } from '../archive/tar.js';
import { Lease } from '../content/lease.js';
import { IngestSink } from '../content/ingest.js';
import { ensureLayout, type Store } from '../content/store.js';
import { openWriter, putBlob, syncBlobDirs, type Writer } from '../content/writer.js';
import { digestOf, hasher, parseDigest } from '../digest.js';
import { DistError, isDistError } from '../errors.js';
import { isIndex, isManifest, MAX_MANIFEST_BYTES, MT, REF_NAME, type Descriptor } from '../image/mediatypes.js';
import { setName } from '../image/names.js';
import { readJsonBlob, readManifestBytes } from '../image/walk.js';
import { CONTAINERD_NAME, EXCLUDED_FILE, normaliseName } from './layout.js';

export interface ImportOptions {
  signal?: AbortSignal;
}

export interface ImportedImage {
  /** The name given in index.json, or undefined for an image the archive does not name. */
  name?: string;
  descriptor: Descriptor;
}

export interface ImportResult {
  images: ImportedImage[];
}

/** The metadata files of the archive formats, held in memory (each at most 4 MiB). */
const METADATA = /(^|\/)(manifest\.json|index\.json|repositories|oci-layout|json|VERSION|[^/]*\.json)$/;
/** All metadata together: past this an archive is a bomb of small files, not images. */
const METADATA_BUDGET = 64 * 1024 * 1024;
const BLOB = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/;

/** A file that is neither a named blob nor metadata: a legacy `layer.tar`, held in an open ingest until checked. */
interface Pending {
  writer: Writer;
  /** Hash of the decompressed bytes (compressed layers only). */
  diff?: { hash: Hash; stream: NodeJS.ReadWriteStream; done: Promise<unknown> };
  compression: Compression;
  size: number;
  digest?: string;
  diffId?: string;
  /** Committed or discarded: the writer is done with. */
  ended?: boolean;
}

/** What one pass over the tar found. */
interface Contents {
  /** path -> digest of a `blobs/` entry, committed. */
  blobs: Map<string, string>;
  metadata: Map<string, Buffer>;
  pending: Map<string, Pending>;
  /** symlink or hardlink path -> the archive path it points at. */
  links: Map<string, string>;
}

/**
 * Reads an image archive from `input` into the store, and names its images.
 *
 * Formats: an OCI layout tar (`oci-layout` + `index.json`: dist, containerd, skopeo
 * `oci-archive:`, podman, Docker 25+ which adds manifest.json), and the `docker save` layout
 * (`manifest.json` with `<id>/layer.tar` or `<hex>.tar` layers, symlinks resolved), each
 * possibly gzip- or zstd-compressed.
 *
 * One pass, streaming: every `blobs/<alg>/<hex>` entry goes into an ingest that checks its
 * bytes against its name and commits only then. Other large files (legacy layers) go into an
 * ingest held open while they are hashed, raw and decompressed; once the config is read, a
 * layer whose DiffID matches is committed as it is, anything else is discarded. Nothing is
 * written outside the store, and tar paths never become file system paths.
 *
 * Naming comes last: when anything is missing (a delta archive whose excluded blobs the
 * store lacks), wrong or hostile, nothing is named, and the verified blobs already committed
 * stay (under a lease until the import ends), so a retry sends only what is missing.
 *
 * Errors: EUNSAFE (paths leaving the archive, links in place of blobs, device entries),
 * EINVAL (a truncated or corrupt archive, metadata over 4 MiB, not an image archive),
 * EINTEGRITY (a blob or DiffID that does not match), EBADSIZE, ENOENT (blobs missing).
 */
export async function importArchive(store: Store, input: Readable, opts: ImportOptions = {}): Promise<ImportResult> {
  await ensureLayout(store);
  const lease = await Lease.create(store);
  const contents: Contents = { blobs: new Map(), metadata: new Map(), pending: new Map(), links: new Map() };
  const session = `import-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  try {
    await readArchive(store, input, contents, lease, session, opts.signal);
    const plan = contents.metadata.has('index.json') && contents.metadata.has('oci-layout') ? await planOci(store, contents) : await planDocker(store, contents);
    await checkPresent(store, contents, plan.needed);
    // Everything is checked: commit the legacy layers and the manifests built for them, then name.
    const put: string[] = [];
    for (const p of plan.commit) {
      await lease.add([p.digest!]);
      await p.writer.commit();
      p.ended = true;
    }
    for (const bytes of plan.put) {
      const digest = digestOf(bytes);
      await lease.add([digest]);
      await putBlob(store, bytes, digest);
      put.push(digest);
    }
    if (put.length) syncBlobDirs(store, put);
    for (const image of plan.images) if (image.name) await setName(store, image.name, image.descriptor);
    return { images: plan.images };
  } finally {
    for (const p of contents.pending.values()) if (!p.ended) await p.writer.abort().catch(() => {});
    await lease.end();
  }
}

/** A tar path made relative and checked: `./a//b` is `a/b`; `/abs` and `..` are refused. */
function archivePath(name: string, what = 'entry'): string {
  if (name.startsWith('/')) throw new DistError('EUNSAFE', `archive ${what} ${JSON.stringify(name)} is an absolute path`);
  const clean = posix.normalize(name).replace(/\/+$/, '');
  if (clean === '..' || clean.startsWith('../') || name.split('/').includes('..')) {
    throw new DistError('EUNSAFE', `archive ${what} ${JSON.stringify(name)} leaves the archive`);
  }
  return clean === '.' ? '' : clean;
}

/** Runs the tar through, entry by entry. Returns the number of blobs committed. */
async function readArchive(store: Store, input: Readable, c: Contents, lease: Lease, session: string, signal?: AbortSignal): Promise<void> {
  const head = await peek(input, 6);
  const unzip = decompressor(sniff(head));
  const extract = tar.extract({ filenameEncoding: 'latin1' } as object);
  const source = unzip ? input.pipe(unzip) : input;
  // Errors of the input or decompressor surface through the extractor's iterator.
  if (unzip) input.on('error', (err) => unzip.destroy(err));
  source.on('error', (err) => extract.destroy(err));
  source.pipe(extract);
  let metadataBytes = 0;
  try {
    for await (const entry of extract) {
      signal?.throwIfAborted();
      const h = entry.header;
      const path = archivePath(h.name);
      const size = h.size ?? 0;
      if (h.type === 'directory' || path === '') {
        await drain(entry);
        continue;
      }
      if (h.type === 'symlink' || h.type === 'link') {
        if (BLOB.test(path) || METADATA.test(path)) throw new DistError('EUNSAFE', `archive entry ${path} is a ${h.type === 'link' ? 'hardlink' : 'symlink'} where a file must be`);
        const target = h.type === 'symlink' && !h.linkname!.startsWith('/') ? posix.join(posix.dirname(path), h.linkname!) : h.linkname!;
        c.links.set(path, archivePath(target, `link ${path} ->`));
        await drain(entry);
        continue;
      }
      if (h.type !== 'file' && h.type !== 'contiguous-file') throw new DistError('EUNSAFE', `archive entry ${path} is a ${h.type}, not a file`);
      const blob = BLOB.exec(path);
      if (blob) {
        const digest = parseDigest(`${blob[1]}:${blob[2]}`).text;
        await ingestBlob(store, entry, digest, size, lease, signal);
        c.blobs.set(path, digest);
      } else if (METADATA.test(path)) {
        if (size > MAX_MANIFEST_BYTES) throw new DistError('EINVAL', `archive entry ${path}: ${size} bytes is over the 4 MiB limit for metadata`);
        metadataBytes += size;
        if (metadataBytes > METADATA_BUDGET) throw new DistError('EINVAL', `archive holds over ${METADATA_BUDGET >> 20} MiB of metadata files: not an image archive`);
        c.metadata.set(path, await readAll(entry));
      } else {
        const earlier = c.pending.get(path);
        if (earlier) await earlier.writer.abort();
        c.pending.set(path, await holdLayer(store, entry, `${session}/${path}`, size, signal));
      }
    }
  } catch (err) {
    extract.destroy();
    throw corrupt(err);
  }
}

/** tar-stream's and zlib's errors, as one line saying the archive is broken. */
function corrupt(err: unknown): unknown {
  if (err instanceof DistError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new DistError('EINVAL', `the archive is truncated or corrupt: ${msg}`, { cause: err });
}

async function drain(entry: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of entry);
}

async function readAll(entry: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Streams a `blobs/` entry into an ingest that must hash to its name, and commits it. True
 * when committed now, false when the store had it (the entry is then skipped).
 */
async function ingestBlob(store: Store, entry: AsyncIterable<unknown>, digest: string, size: number, lease: Lease, signal?: AbortSignal): Promise<void> {
  const opened = await openWriter(store, { ref: `import@${digest}`, expected: digest, total: size, signal });
  if (opened.exists) {
    await drain(entry);
    return;
  }
  const writer = opened.writer;
  // An ingest of this blob resumed or adopted from an earlier try holds the entry's first bytes
  // already: the sink skips them, as for dist ingest (commit checks the digest of the whole).
  const sink = new IngestSink(writer, writer.offset);
  let committing = false;
  try {
    for await (const chunk of entry) sink.take([chunk as Buffer]);
    await lease.add([digest]);
    committing = true;
    await writer.commit();
  } catch (err) {
    // commit discards on a digest or size mismatch itself. A broken entry (a truncated tar)
    // is discarded too: these bytes came from an archive, not a resumable download.
    if (!committing) await writer.abort().catch(() => {});
    throw err;
  }
}

/** Streams a file that may be a legacy layer into an open ingest (which hashes it raw), hashing it decompressed too. */
async function holdLayer(store: Store, entry: AsyncIterable<unknown>, ref: string, size: number, signal?: AbortSignal): Promise<Pending> {
  const opened = await openWriter(store, { ref, total: size, signal });
  if (opened.exists) throw new Error('unreachable: an ingest without an expected digest never exists');
  const p: Pending = { writer: opened.writer, compression: 'none', size };
  try {
    let first = true;
    for await (const chunk of entry) {
      const buf = chunk as Buffer;
      if (first) {
        first = false;
        p.compression = sniff(buf);
        const stream = decompressor(p.compression);
        if (stream) {
          const hash = hasher('sha256');
          stream.on('data', (d: Buffer) => hash.update(d));
          p.diff = { hash, stream, done: once(stream, 'end') };
          // A corrupt compressed file is not a layer: its DiffID stays unknown.
          p.diff.done.catch(() => {});
          stream.on('error', () => (p.diff = undefined));
        }
      }
      p.writer.write([buf]);
      if (p.diff && !p.diff.stream.write(buf)) await Promise.race([once(p.diff.stream, 'drain'), p.diff.done.catch(() => {})]);
    }
    // The ingest hashes what it holds (sha256, no digest being expected): the raw digest.
    p.digest = p.writer.heldDigest();
    if (p.diff) {
      p.diff.stream.end();
      try {
        await p.diff.done;
        p.diffId = `sha256:${p.diff.hash.digest('hex')}`;
      } catch {}
    } else if (p.compression === 'none') {
      p.diffId = p.digest;
    }
    return p;
  } catch (err) {
    await p.writer.abort().catch(() => {});
    throw err;
  }
}

/** What to do once the archive is read: the blobs the images need, what to commit, what to name. */
interface Plan {
  needed: Descriptor[];
  commit: Pending[];
  put: Buffer[];
  images: ImportedImage[];
}

function parseJson(c: Contents, path: string): any {
  try {
    return JSON.parse(c.metadata.get(path)!.toString('utf8'));
  } catch {
    throw new DistError('EINVAL', `archive entry ${path} is not valid JSON`);
  }
}

/** An OCI layout: index.json names the images; every blob they reach must be in the store now. */
async function planOci(store: Store, c: Contents): Promise<Plan> {
  const layout = parseJson(c, 'oci-layout');
  if (layout?.imageLayoutVersion !== '1.0.0') throw new DistError('EINVAL', `oci-layout: unsupported imageLayoutVersion ${JSON.stringify(layout?.imageLayoutVersion)}`);
  const index = parseJson(c, 'index.json');
  if (!Array.isArray(index?.manifests)) throw new DistError('EINVAL', 'index.json: no manifests array');
  const needed: Descriptor[] = [];
  const seen = new Set<string>();
  const excluded = excludedOf(c);
  /**
   * Walks a descriptor down to its layers; a manifest missing from the store is left for
   * checkPresent. The platforms of an index may be partly there (ctr export writes the index
   * with one platform's content, as dist pull keeps one): a missing one is passed over,
   * unless the archive says it left it out.
   */
  const walk = async (d: Descriptor, optional = false): Promise<void> => {
    checkDescriptor(d, 'index.json');
    if (seen.has(d.digest)) return;
    const present = await store.has(d.digest);
    if (optional && !present && !excluded.has(d.digest)) return;
    seen.add(d.digest);
    needed.push(d);
    if (!(isIndex(d.mediaType) || isManifest(d.mediaType)) || !present) return;
    const doc = await readJsonBlob(store, d.digest);
    for (const m of Array.isArray(doc.manifests) ? doc.manifests : []) await walk(m, true);
    for (const child of [...(doc.config ? [doc.config] : []), ...(Array.isArray(doc.layers) ? doc.layers : [])]) await walk(child);
  };
  const images: ImportedImage[] = [];
  for (const d of index.manifests as Descriptor[]) {
    await walk(d);
    const name = ociName(d.annotations ?? {});
    const { mediaType, digest, size, platform } = d;
    images.push({ name, descriptor: { mediaType, digest, size, ...(platform ? { platform } : {}) } });
  }
  return { needed, commit: [], put: [], images };
}

/**
 * The name of an index.json entry: its ref.name as it is (dist's own archives, skopeo,
 * podman), unless that is only a tag (`1`, `latest`: containerd and Docker 25+), when the
 * full name containerd writes beside it is taken.
 */
function ociName(annotations: Record<string, string>): string | undefined {
  const ref = annotations[REF_NAME];
  const full = annotations[CONTAINERD_NAME];
  if (ref === undefined || (full !== undefined && !/[:/@]/.test(ref))) return full;
  return ref;
}

function checkDescriptor(d: Descriptor, where: string): void {
  if (!d || typeof d.digest !== 'string' || !Number.isSafeInteger(d.size) || d.size < 0) throw new DistError('EINVAL', `${where}: malformed descriptor`);
  parseDigest(d.digest);
}

/**
 * Fails, naming nothing, unless the store holds every blob in `needed` at its size. The
 * missing ones are listed, saying which the archive left out on purpose (a delta archive).
 */
async function checkPresent(store: Store, c: Contents, needed: Descriptor[]): Promise<void> {
  const missing: string[] = [];
  for (const d of needed) {
    const st = statSync(store.blobPath(d.digest), { throwIfNoEntry: false });
    if (!st) missing.push(d.digest);
    else if (st.size !== d.size) throw new DistError('EBADSIZE', `${d.digest}: ${st.size} bytes, but the archive's manifests say ${d.size}`, { digest: d.digest });
  }
  if (missing.length === 0) return;
  const excluded = excludedOf(c);
  const left = missing.filter((d) => excluded.has(d));
  const what = left.length === missing.length ? 'the archive left out (a delta archive) and the store lacks' : 'neither the archive nor the store holds';
  throw new DistError('ENOENT', `${missing.length} blob${missing.length === 1 ? '' : 's'} ${what}: ${missing.join(' ')}`, { missing, hint: 'import the base image first, or export without --exclude-from' });
}

/** The digests a delta archive says it left out. */
function excludedOf(c: Contents): Set<string> {
  if (!c.metadata.has(EXCLUDED_FILE)) return new Set();
  const list = parseJson(c, EXCLUDED_FILE)?.excluded;
  return new Set(Array.isArray(list) ? list.filter((d: unknown) => typeof d === 'string') : []);
}

/** An archive path, through its symlinks and hardlinks (at most 16 hops). */
function follow(c: Contents, path: string): string {
  for (let i = 0; i < 16; i++) {
    const next = c.links.get(path);
    if (next === undefined) return path;
    path = next;
  }
  throw new DistError('EUNSAFE', `archive link ${path}: too many levels of links`);
}

/** The `docker save` layout: manifest.json entries become Docker v2 manifests built from the configs. */
async function planDocker(store: Store, c: Contents): Promise<Plan> {
  if (!c.metadata.has('manifest.json')) throw new DistError('EINVAL', 'not an image archive: no index.json with oci-layout, and no manifest.json');
  const entries = parseJson(c, 'manifest.json');
  if (!Array.isArray(entries)) throw new DistError('EINVAL', 'manifest.json: not a list of images');
  const plan: Plan = { needed: [], commit: [], put: [], images: [] };
  for (const e of entries) {
    if (typeof e?.Config !== 'string' || !Array.isArray(e.Layers)) throw new DistError('EINVAL', 'manifest.json: an entry without Config or Layers');
    const configBytes = await fileBytes(store, c, e.Config);
    let config: any;
    try {
      config = JSON.parse(configBytes.toString('utf8'));
    } catch {
      throw new DistError('EINVAL', `manifest.json: config ${e.Config} is not valid JSON`);
    }
    const diffIds: string[] = config?.rootfs?.diff_ids ?? [];
    if (diffIds.length !== e.Layers.length) throw new DistError('EINVAL', `${e.Config}: config lists ${diffIds.length} DiffIDs for ${e.Layers.length} layers`);
    const layers: Descriptor[] = [];
    for (const [i, name] of (e.Layers as unknown[]).entries()) {
      if (typeof name !== 'string') throw new DistError('EINVAL', 'manifest.json: a layer path is not a string');
      const layer = await layerOf(store, c, name);
      if (layer.diffId !== diffIds[i]) {
        throw new DistError('EINTEGRITY', `layer ${i} ${name}: DiffID ${layer.diffId ?? 'unknown (not a tar, or corrupt)'} does not match the config's ${diffIds[i]}`);
      }
      layers.push({ mediaType: LAYER_TYPE[layer.compression], digest: layer.digest, size: layer.size });
      if (layer.pending && !plan.commit.includes(layer.pending)) plan.commit.push(layer.pending);
      else if (!layer.pending) plan.needed.push(layers[i]!);
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.dockerManifest,
        config: { mediaType: MT.dockerConfig, digest: digestOf(configBytes), size: configBytes.length },
        layers,
      }),
    );
    plan.put.push(configBytes, manifest);
    const descriptor: Descriptor = { mediaType: MT.dockerManifest, digest: digestOf(manifest), size: manifest.length };
    const tags: unknown[] = Array.isArray(e.RepoTags) ? e.RepoTags : [];
    if (tags.length === 0) plan.images.push({ descriptor });
    for (const tag of tags) {
      const name = typeof tag === 'string' ? normaliseName(tag) : undefined;
      if (!name) throw new DistError('EINVAL', `manifest.json: invalid RepoTag ${JSON.stringify(tag)}`);
      plan.images.push({ name, descriptor });
    }
  }
  // Commit the pending layers only once: two images may share one.
  return plan;
}

const LAYER_TYPE: Record<Compression, string> = {
  none: 'application/vnd.docker.image.rootfs.diff.tar',
  gzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
};

/** The archive file `name` (manifest.json's path) resolved through links, checked to stay inside. */
function resolveIn(c: Contents, name: string): string {
  let path: string;
  try {
    path = archivePath(name, 'path');
  } catch (err) {
    if (isDistError(err, 'EUNSAFE')) throw new DistError('EUNSAFE', `manifest.json names ${JSON.stringify(name)}, outside the archive`);
    throw err;
  }
  path = follow(c, path);
  if (!c.blobs.has(path) && !c.metadata.has(path) && !c.pending.has(path)) throw new DistError('EINVAL', `manifest.json names ${JSON.stringify(name)}, which is not in the archive`);
  return path;
}

async function fileBytes(store: Store, c: Contents, name: string): Promise<Buffer> {
  const path = resolveIn(c, name);
  if (c.metadata.has(path)) return c.metadata.get(path)!;
  if (c.blobs.has(path)) return readManifestBytes(store, c.blobs.get(path)!);
  throw new DistError('EINVAL', `manifest.json: config ${name} is not a JSON file`);
}

/** A layer named by manifest.json: a held legacy file, or a committed blob (Docker 25+). */
async function layerOf(store: Store, c: Contents, name: string): Promise<{ digest: string; size: number; compression: Compression; diffId?: string; pending?: Pending }> {
  const path = resolveIn(c, name);
  const p = c.pending.get(path);
  if (p) return { digest: p.digest!, size: p.size, compression: p.compression, diffId: p.diffId, pending: p };
  const digest = c.blobs.get(path);
  if (!digest) throw new DistError('EINVAL', `manifest.json: layer ${name} is not a layer file`);
  const file = store.blobPath(digest);
  const head = Buffer.alloc(6);
  const fd = openSync(file, 'r');
  let n: number;
  try {
    n = readSync(fd, head, 0, 6, 0);
  } finally {
    closeSync(fd);
  }
  const compression = sniff(head.subarray(0, n));
  const size = statSync(file).size;
  if (compression === 'none') return { digest, size, compression, diffId: digest };
  // A compressed blob layer: its DiffID is read from the store (one more pass, still streaming).
  const hash = hasher('sha256');
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }).pipe(decompressor(compression)!)) hash.update(chunk as Buffer);
  } catch {
    return { digest, size, compression };
  }
  return { digest, size, compression, diffId: `sha256:${hash.digest('hex')}` };
}

import { closeSync, createReadStream, openSync, readSync, statSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type * as TarStream from 'tar-stream';
import { decompressor, sniff, type Compression } from '../archive/decompress.js';
import { tar } from '../archive/tar.js';
import type { Store } from '../content/store.js';
import { hasher, isDigest } from '../digest.js';
import { DistError } from '../errors.js';
import { isIndex, isManifest, MT, REF_NAME, type Descriptor, type Platform } from '../image/mediatypes.js';
import { findImage } from '../image/names.js';
import { formatPlatform, matches, selectManifest } from '../image/platform.js';
import { readJsonBlob } from '../image/walk.js';
import { streamPromises } from '../lazy.js';
import { blobPath, CONTAINERD_NAME, EXCLUDED_FILE, FIXED, normaliseName, repoTag } from './layout.js';

export type ExportFormat = 'oci' | 'docker';

export interface ExportOptions {
  /** `oci` (default): an OCI layout with a Docker manifest.json; `docker`: the `docker save` layout. */
  format?: ExportFormat;
  /** Export only this platform of an index (the index itself is then left out). */
  platform?: Platform;
  /** The platform manifest.json points at for an index exported whole (docker loads one). */
  hostPlatform: Platform;
  /** Digests to leave out (a delta archive); only with the `oci` format. */
  exclude?: Set<string>;
  signal?: AbortSignal;
}

/** One named image as exported: the descriptor index.json names, and its platform manifests. */
interface Picked {
  name: string;
  top: Descriptor;
  manifests: { desc: Descriptor; manifest: any; config: any }[];
}

/**
 * Writes the named images to `out` as one tar, streaming each blob from the store.
 *
 * - `oci`: `oci-layout`, `index.json` (one entry per name, with ref.name and containerd's
 *   full name), `blobs/<alg>/<hex>`, and a Docker `manifest.json` pointing at the platform
 *   manifest of each image that matches `hostPlatform` (the first otherwise), as containerd
 *   and Docker 25+ write. With `exclude`, the blobs listed are left out and named in
 *   `dist-excluded.json`.
 * - `docker`: `manifest.json`, `repositories`, `<hex>.json` configs and one `<v1id>/`
 *   directory per layer with `VERSION`, `json` and an uncompressed `layer.tar`. A compressed
 *   layer is read twice (its uncompressed size goes in the tar header before its bytes), so
 *   memory stays flat.
 *
 * Deterministic: entries sorted by path, epoch times, owner 0, fixed modes; the same images
 * give the same bytes. Errors: ENOENT (no such image, or a blob missing from the store),
 * EINVAL (bad options or manifests).
 */
export async function exportImages(store: Store, names: string[], out: Writable, opts: ExportOptions): Promise<void> {
  const format = opts.format ?? 'oci';
  if (format === 'docker' && opts.exclude?.size) throw new DistError('EINVAL', '--exclude-from needs the oci format: docker archives carry every layer');
  if (names.length === 0) throw new DistError('EINVAL', 'name at least one image to export');
  const picked: Picked[] = [];
  for (const name of names) picked.push(await pick(store, name, format, opts));

  const pack = tar.pack();
  const written = streamPromises().pipeline(pack, out, { signal: opts.signal });
  // A failed write (EPIPE, the signal) must stop the producer below, not leave it waiting.
  written.catch((err) => pack.destroy(err));
  try {
    if (format === 'oci') await writeOci(store, pack, picked, opts);
    else await writeDocker(store, pack, picked, opts);
    pack.finalize();
    await written;
  } catch (err) {
    pack.destroy(err as Error);
    await written.catch(() => {});
    throw err;
  }
}

/** Resolves a name to its descriptor and the manifests to export (one, or an index's all). */
async function pick(store: Store, name: string, format: ExportFormat, opts: ExportOptions): Promise<Picked> {
  const image = await findImage(store, name);
  let top = image.descriptor;
  let descs: Descriptor[] = [top];
  if (isIndex(top.mediaType)) {
    const index = await readJsonBlob(store, top.digest);
    const all: Descriptor[] = (index.manifests ?? []).filter((m: Descriptor) => isManifest(m.mediaType));
    // A docker archive holds one manifest per tag: the platform asked for, else this machine's.
    const want = opts.platform ?? (format === 'docker' ? opts.hostPlatform : undefined);
    if (want) {
      top = selectManifest(all, want);
      descs = [top];
    } else {
      descs = all;
    }
  } else if (!isManifest(top.mediaType)) {
    throw new DistError('EINVAL', `${name}: ${top.mediaType} is not an image manifest or index`);
  }
  const manifests = [];
  for (const desc of descs) {
    if (descs.length > 1 && !(await store.has(desc.digest))) {
      throw new DistError('ENOENT', `${name}: the store holds only some platforms of this index (not ${formatPlatform(desc.platform)})`, { hint: 'export one with --platform, or dist pull --all-platforms' });
    }
    const manifest = await readJsonBlob(store, desc.digest);
    if (!manifest.config?.digest || !Array.isArray(manifest.layers)) throw new DistError('EINVAL', `${desc.digest}: not an image manifest`);
    manifests.push({ desc, manifest, config: await readJsonBlob(store, manifest.config.digest) });
  }
  return { name: image.name, top: { ...top, annotations: undefined }, manifests };
}

/** Streams one tar entry: bytes in memory, or a readable of exactly `size` bytes. */
async function entry(pack: TarStream.Pack, name: string, body: Buffer | { size: number; open: () => Readable }, mode = 0o444): Promise<void> {
  if (Buffer.isBuffer(body)) {
    await new Promise<void>((resolve, reject) => pack.entry({ name, mode, size: body.length, ...FIXED }, body, (err) => (err ? reject(err) : resolve())));
    return;
  }
  await new Promise<void>((resolve, reject) => {
    // tar-stream calls back once the entry is complete (or short: "size mismatch").
    const sink = pack.entry({ name, mode, size: body.size, ...FIXED }, (err) => (err ? reject(err) : resolve()));
    streamPromises().pipeline(body.open(), sink).catch(reject);
  });
}

function directory(pack: TarStream.Pack, name: string): void {
  pack.entry({ name, type: 'directory', mode: 0o755, ...FIXED });
}

const json = (v: unknown) => Buffer.from(`${JSON.stringify(v)}\n`);

/** A stored blob as a tar entry body (its size from the store, checked against the descriptor). */
function storedBlob(store: Store, d: Descriptor): { size: number; open: () => Readable } {
  const st = statSync(store.blobPath(d.digest), { throwIfNoEntry: false });
  if (!st) throw new DistError('ENOENT', `${d.digest} is not in the store`, { digest: d.digest, hint: 'dist pull the image again' });
  if (st.size !== d.size) throw new DistError('EBADSIZE', `${d.digest}: the store holds ${st.size} bytes, the manifest says ${d.size}`, { digest: d.digest });
  return { size: st.size, open: () => createReadStream(store.blobPath(d.digest), { highWaterMark: 1 << 20 }) };
}

/** The manifest docker load should use: this machine's platform, else the first. */
function dockerPick(p: Picked, host: Platform): Picked['manifests'][number] {
  return p.manifests.find((m) => matches(host, m.desc.platform ?? platformOf(m.config))) ?? p.manifests[0]!;
}

function platformOf(config: any): Platform | undefined {
  return typeof config?.os === 'string' && typeof config?.architecture === 'string' ? { os: config.os, architecture: config.architecture, variant: config.variant } : undefined;
}

async function writeOci(store: Store, pack: TarStream.Pack, picked: Picked[], opts: ExportOptions): Promise<void> {
  const blobs = new Map<string, Descriptor>();
  const add = (d: Descriptor) => blobs.set(d.digest, d);
  for (const p of picked) {
    add(p.top);
    for (const { desc, manifest } of p.manifests) {
      add(desc);
      add(manifest.config);
      for (const l of manifest.layers) add(l);
    }
  }
  const excluded = [...blobs.keys()].filter((d) => opts.exclude?.has(d)).sort();
  const kept = [...blobs.values()].filter((d) => !opts.exclude?.has(d.digest)).sort((a, b) => (blobPath(a.digest) < blobPath(b.digest) ? -1 : 1));
  const sources = kept.map((d) => ({ d, body: storedBlob(store, d) }));

  directory(pack, 'blobs/');
  let dir = '';
  for (const { d, body } of sources) {
    opts.signal?.throwIfAborted();
    const alg = `blobs/${d.digest.slice(0, d.digest.indexOf(':'))}/`;
    if (alg !== dir) directory(pack, (dir = alg));
    await entry(pack, blobPath(d.digest), body);
  }
  if (excluded.length) await entry(pack, EXCLUDED_FILE, json({ excluded }));
  const index = {
    schemaVersion: 2,
    mediaType: MT.ociIndex,
    manifests: picked.map((p) => {
      // An image exported by digest has no name to carry.
      if (isDigest(p.name)) return p.top;
      const full = normaliseName(p.name);
      return { ...p.top, annotations: { [REF_NAME]: p.name, ...(full ? { [CONTAINERD_NAME]: full } : {}) } };
    }),
  };
  await entry(pack, 'index.json', json(index));
  await entry(pack, 'manifest.json', json(dockerManifest(picked, opts.hostPlatform, (d) => blobPath(d), (m) => m.manifest.layers.map((l: Descriptor) => blobPath(l.digest)))));
  await entry(pack, 'oci-layout', json({ imageLayoutVersion: '1.0.0' }));
}

/**
 * Docker's manifest.json: one entry per platform manifest, the names that point at it
 * merged into RepoTags (as docker save does for one image under several tags).
 */
function dockerManifest(picked: Picked[], host: Platform, configPath: (digest: string) => string, layerPaths: (m: Picked['manifests'][number]) => string[]): object[] {
  const byManifest = new Map<string, { Config: string; RepoTags: string[]; Layers: string[] }>();
  for (const p of picked) {
    const m = dockerPick(p, host);
    let e = byManifest.get(m.desc.digest);
    if (!e) byManifest.set(m.desc.digest, (e = { Config: configPath(m.manifest.config.digest), RepoTags: [], Layers: layerPaths(m) }));
    const tag = repoTag(p.name);
    if (tag && !e.RepoTags.includes(tag)) e.RepoTags.push(tag);
  }
  return [...byManifest.values()];
}

/** A layer's bytes uncompressed, with their count (a first pass for a compressed blob). */
async function uncompressedLayer(store: Store, d: Descriptor): Promise<{ size: number; open: () => Readable }> {
  const stored = storedBlob(store, d);
  const head = Buffer.alloc(4);
  const fd = openSync(store.blobPath(d.digest), 'r');
  try {
    readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  const kind: Compression = sniff(head);
  if (kind === 'none') return stored;
  const open = () => stored.open().pipe(decompressor(kind)!);
  let size = 0;
  for await (const chunk of open()) size += (chunk as Buffer).length;
  return { size, open };
}

async function writeDocker(store: Store, pack: TarStream.Pack, picked: Picked[], opts: ExportOptions): Promise<void> {
  /** path -> entry body, written in path order at the end. */
  const files = new Map<string, Buffer | { d: Descriptor }>();
  const repositories: Record<string, Record<string, string>> = {};
  const layerDirs = new Map<string, string[]>();
  for (const p of picked) {
    const m = dockerPick(p, opts.hostPlatform);
    const diffIds: string[] = m.config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== m.manifest.layers.length) {
      throw new DistError('EINVAL', `${m.manifest.config.digest}: config lists ${diffIds.length} DiffIDs for ${m.manifest.layers.length} layers`);
    }
    let parent = '';
    const dirs: string[] = [];
    // v1 layer ids: a chain over the DiffIDs, so images sharing base layers share directories.
    for (const [i, layer] of (m.manifest.layers as Descriptor[]).entries()) {
      const id = hasher('sha256').update(`${parent}\n${diffIds[i]}`).digest('hex');
      files.set(`${id}/VERSION`, Buffer.from('1.0'));
      files.set(`${id}/json`, json({ id, ...(parent ? { parent } : {}), created: FIXED.mtime.toISOString(), container_config: {}, os: m.config.os ?? 'linux' }));
      files.set(`${id}/layer.tar`, { d: layer });
      dirs.push(id);
      parent = id;
    }
    layerDirs.set(m.desc.digest, dirs);
    files.set(`${m.manifest.config.digest.slice(m.manifest.config.digest.indexOf(':') + 1)}.json`, { d: m.manifest.config });
    const tag = repoTag(p.name);
    if (tag && parent) {
      const colon = tag.lastIndexOf(':');
      (repositories[tag.slice(0, colon)] ??= {})[tag.slice(colon + 1)] = parent;
    }
  }
  const manifest = dockerManifest(picked, opts.hostPlatform, (d) => `${d.slice(d.indexOf(':') + 1)}.json`, (m) => layerDirs.get(m.desc.digest)!.map((id) => `${id}/layer.tar`));
  files.set('manifest.json', json(manifest));
  files.set('repositories', json(repositories));
  let lastDir = '';
  for (const path of [...files.keys()].sort()) {
    opts.signal?.throwIfAborted();
    const slash = path.indexOf('/');
    if (slash > 0 && path.slice(0, slash + 1) !== lastDir) directory(pack, (lastDir = path.slice(0, slash + 1)));
    const f = files.get(path)!;
    if (Buffer.isBuffer(f)) {
      await entry(pack, path, f);
      continue;
    }
    const body = path.endsWith('/layer.tar') ? await uncompressedLayer(store, f.d) : storedBlob(store, f.d);
    await entry(pack, path, body);
  }
}

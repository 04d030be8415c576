import { readFile } from './fsp.js';
import type { Store } from './content/store.js';
import { digestOf, parseDigest } from './digest.js';
import { DistError } from './errors.js';
import { isIndex, isManifest, type Descriptor, type Platform } from './image/mediatypes.js';
import { findImage } from './image/names.js';
import { formatPlatform, selectManifest } from './image/platform.js';
import { readManifestBytes } from './image/walk.js';
import type { RegistryClient } from './remote/client.js';
import { fetchManifest, listTags, readBlob } from './remote/fetcher.js';
import type { ImageRef } from './remote/locator.js';

/** Where inspect reads manifests and configs: a registry or the store. */
interface Reader {
  manifest(desc: Descriptor): Promise<Buffer>;
  blob(desc: Descriptor): Promise<Buffer>;
}

/** What `dist inspect` reports: the top object's bytes, the platform's manifest and its config. */
export interface Inspected {
  name: string;
  top: { descriptor: Descriptor; bytes: Buffer };
  manifest: { descriptor: Descriptor; bytes: Buffer };
  config: Buffer;
  /** The platforms an index lists (none for a single manifest). */
  platforms: string[];
  tags?: string[];
}

/** What to read beyond the top object: `raw` reads nothing more; `tags` lists the repository's tags. */
export interface InspectOptions {
  platform: Platform;
  raw?: boolean;
  tags?: boolean;
  signal?: AbortSignal;
}

async function walk(reader: Reader, name: string, top: { descriptor: Descriptor; bytes: Buffer }, opts: InspectOptions): Promise<Inspected> {
  if (opts.raw) return { name, top, manifest: top, config: Buffer.alloc(0), platforms: [] };
  const platform = opts.platform;
  let manifest = top;
  let platforms: string[] = [];
  if (isIndex(top.descriptor.mediaType)) {
    const entries: Descriptor[] = (JSON.parse(top.bytes.toString('utf8')).manifests ?? []).filter((m: Descriptor) => isManifest(m.mediaType));
    platforms = entries.map((m) => formatPlatform(m.platform));
    const chosen = selectManifest(entries, platform);
    manifest = { descriptor: { mediaType: chosen.mediaType, digest: chosen.digest, size: chosen.size }, bytes: await reader.manifest(chosen) };
  } else if (!isManifest(top.descriptor.mediaType)) {
    throw new DistError('EINVAL', `${name}: unsupported media type ${top.descriptor.mediaType}`);
  }
  const doc = JSON.parse(manifest.bytes.toString('utf8'));
  if (!doc.config?.digest) throw new DistError('EINVAL', `${manifest.descriptor.digest}: not an image manifest (no config)`);
  const config = await reader.blob(doc.config);
  return { name, top, manifest, config, platforms };
}

/**
 * Reads an image from a registry for inspection: the reference's manifest or index (the
 * platform's manifest out of an index), its config (verified), and the repository's tags.
 * Errors: ENOENT, EREMOTE, EINTEGRITY.
 */
export async function inspectRemote(client: RegistryClient, ref: ImageRef, opts: InspectOptions): Promise<Inspected> {
  const { signal } = opts;
  const top = await fetchManifest(client, ref, ref.digest ?? ref.tag!, undefined, signal);
  const reader: Reader = {
    manifest: async (d) => (await fetchManifest(client, ref, d.digest, [d.mediaType], signal)).bytes,
    blob: async (d) => verified(d, await readBlob(client, ref, d.digest, d.size, signal)),
  };
  const found = await walk(reader, `${ref.host}/${ref.repository}`, top, opts);
  if (!opts.tags) return found;
  const tags: string[] = [];
  for await (const tag of listTags(client, ref, 1000, signal)) tags.push(tag);
  return { ...found, tags };
}

/** The same from the store, by name or digest. Errors: ENOENT (no such image, or a blob missing). */
export async function inspectLocal(store: Store, nameOrDigest: string, opts: InspectOptions): Promise<Inspected> {
  const image = await findImage(store, nameOrDigest);
  const read = async (d: Descriptor) => {
    if (!(await store.has(d.digest))) throw new DistError('ENOENT', `${d.digest}: not in the store`, { digest: d.digest });
    return verified(d, await readFile(store.blobPath(d.digest)));
  };
  const manifestBytes = async (d: Descriptor) => readManifestBytes(store, d.digest);
  const top = { descriptor: image.descriptor, bytes: await manifestBytes(image.descriptor) };
  return walk({ manifest: manifestBytes, blob: read }, image.name, top, opts);
}

function verified(d: Descriptor, bytes: Buffer): Buffer {
  const got = digestOf(bytes, parseDigest(d.digest).algorithm);
  if (got !== d.digest) throw new DistError('EINTEGRITY', `${d.digest}: the bytes hash to ${got}`, { digest: d.digest, found: got });
  return bytes;
}

/**
 * The summary `skopeo inspect` prints (its field names, so scripts written for it work), plus
 * MediaType and, for an index, the platforms it lists.
 */
export function summary(i: Inspected): Record<string, unknown> {
  const m = JSON.parse(i.manifest.bytes.toString('utf8'));
  const c = JSON.parse(i.config.toString('utf8'));
  const layers: Descriptor[] = m.layers ?? [];
  return {
    Name: i.name,
    Digest: i.top.descriptor.digest,
    ...(i.tags ? { RepoTags: i.tags } : {}),
    Created: goTime(c.created),
    DockerVersion: c.docker_version ?? '',
    Labels: c.config?.Labels ?? null,
    Architecture: c.architecture,
    Os: c.os,
    ...(c.variant ? { Variant: c.variant } : {}),
    Layers: layers.map((l) => l.digest),
    LayersData: layers.map((l) => ({ MIMEType: l.mediaType, Digest: l.digest, Size: l.size, Annotations: l.annotations ?? null })),
    Env: c.config?.Env ?? null,
    MediaType: i.top.descriptor.mediaType,
    ...(i.platforms.length ? { ManifestDigest: i.manifest.descriptor.digest, Platforms: i.platforms } : {}),
  };
}

/** A timestamp as Go's time.Time prints it (skopeo does): trailing zeros of the fraction dropped. */
function goTime(t: unknown): unknown {
  if (typeof t !== 'string') return t;
  return t.replace(/\.(\d*?)0+(?=Z|[+-]\d\d:\d\d$)/, (_, keep: string) => (keep ? `.${keep}` : ''));
}

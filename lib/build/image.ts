import type { Writable } from 'node:stream';
import { IngestSink } from '../content/ingest.js';
import { putBlob, openWriter, syncBlobDirs } from '../content/writer.js';
import type { Store } from '../content/store.js';
import { digestOf } from '../digest.js';
import { DistError } from '../errors.js';
import { chainId } from '../image/identity.js';
import { isIndex, MT, type Descriptor, type Platform } from '../image/mediatypes.js';
import { findImage, setName } from '../image/names.js';
import { selectManifest } from '../image/platform.js';
import { readJsonBlob } from '../image/walk.js';

/** The OCI layer media type dist writes (commit and build gzip their layers). */
export const LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

/**
 * An image being made: its manifest and config as plain JSON, changed by the functions below
 * (which return new values and never touch the store) and written by `writeImage`.
 */
export interface ImageDraft {
  manifest: any;
  config: any;
  /** The manifest digest this draft started from (undefined for `empty`). */
  base?: string;
}

/** What `--config` and a spec's entrypoint/cmd/env/workdir/user/labels may set. */
export interface ConfigChanges {
  entrypoint?: string[];
  cmd?: string[];
  /** KEY=VALUE entries; a key already set is replaced. */
  env?: string[];
  workdir?: string;
  user?: string;
  labels?: Record<string, string>;
}

export interface HistoryEntry {
  created: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** A layer committed to the store. */
export interface LayerBlob {
  mediaType: string;
  digest: string;
  size: number;
  diffId: string;
}

/** A new image with no layers, for `base: empty`. */
export function emptyImage(platform: Platform, created: string): ImageDraft {
  return {
    manifest: { schemaVersion: 2, mediaType: MT.ociManifest, config: undefined, layers: [] },
    config: { created, architecture: platform.architecture, os: platform.os, ...(platform.variant ? { variant: platform.variant } : {}), config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] },
  };
}

/**
 * Reads an image from the store as a draft (the platform's manifest when it is an index).
 * Errors: ENOENT (no such image), EINVAL (not an image manifest).
 */
export async function loadImage(store: Store, nameOrDigest: string, platform: Platform): Promise<ImageDraft> {
  let desc = (await findImage(store, nameOrDigest)).descriptor;
  if (isIndex(desc.mediaType)) desc = selectManifest((await readJsonBlob(store, desc.digest)).manifests ?? [], platform);
  const manifest = await readJsonBlob(store, desc.digest);
  if (!manifest.config?.digest || !Array.isArray(manifest.layers)) throw new DistError('EINVAL', `${desc.digest}: not an image manifest`);
  const config = await readJsonBlob(store, manifest.config.digest);
  if ((config.rootfs?.diff_ids ?? []).length !== manifest.layers.length) {
    throw new DistError('EINVAL', `${manifest.config.digest}: config lists ${config.rootfs?.diff_ids?.length ?? 0} DiffIDs for ${manifest.layers.length} layers`);
  }
  return { manifest, config, base: desc.digest };
}

/** The ChainID of a draft's layers (the key of its unpacked root filesystem). */
export function draftChainId(img: ImageDraft): string {
  return chainId(img.config.rootfs?.diff_ids ?? []);
}

/** Appends a layer: its DiffID to the config, a history entry, its descriptor to the manifest. */
export function addLayer(img: ImageDraft, layer: LayerBlob, history: HistoryEntry): ImageDraft {
  const config = structuredClone(img.config);
  config.rootfs = { type: 'layers', diff_ids: [...(config.rootfs?.diff_ids ?? []), layer.diffId] };
  config.history = [...(config.history ?? []), history];
  config.created = history.created;
  const manifest = structuredClone(img.manifest);
  manifest.layers = [...manifest.layers, { mediaType: layer.mediaType, digest: layer.digest, size: layer.size }];
  return { ...img, manifest, config };
}

/** Applies config changes (the runtime defaults: entrypoint, cmd, env, workdir, user, labels). */
export function changeConfig(img: ImageDraft, changes: ConfigChanges): ImageDraft {
  const config = structuredClone(img.config);
  const c = (config.config ??= {});
  if (changes.entrypoint) {
    c.Entrypoint = changes.entrypoint;
    // docker's rule: a new entrypoint drops an inherited cmd unless one is given too.
    if (!changes.cmd) delete c.Cmd;
  }
  if (changes.cmd) c.Cmd = changes.cmd;
  if (changes.env) {
    const env: string[] = [...(c.Env ?? [])];
    for (const e of changes.env) {
      const key = e.split('=')[0];
      const i = env.findIndex((x) => x.split('=')[0] === key);
      if (i >= 0) env[i] = e;
      else env.push(e);
    }
    c.Env = env;
  }
  if (changes.workdir !== undefined) c.WorkingDir = changes.workdir;
  if (changes.user !== undefined) c.User = changes.user;
  if (changes.labels) c.Labels = { ...(c.Labels ?? {}), ...changes.labels };
  return { ...img, config };
}

/**
 * Streams a layer into the store: `produce` writes the layer's bytes to the sink it is given
 * and returns the DiffID; the blob is hashed while written, and visible under blobs/ only
 * once committed (verified). On failure the ingest is discarded.
 */
export async function ingestLayer(
  store: Store,
  mediaType: string,
  produce: (sink: Writable) => Promise<{ diffId: string }>,
  signal?: AbortSignal,
): Promise<LayerBlob> {
  const ref = `dist-build-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const opened = await openWriter(store, { ref, signal });
  if (opened.exists) throw new DistError('EIO', `ingest ${ref} exists already`);
  const writer = opened.writer;
  try {
    // A new ingest holds nothing: no bytes to skip.
    const { diffId } = await produce(new IngestSink(writer, 0));
    const size = writer.offset;
    const digest = await writer.commit();
    return { mediaType, digest, size, diffId };
  } catch (err) {
    await writer.abort().catch(() => {});
    throw err;
  }
}

/**
 * Writes the draft's config and manifest to the store and names it. Returns the manifest's
 * descriptor. Blobs are fsynced (their directory too) before any name points at them.
 */
export async function writeImage(store: Store, img: ImageDraft, names: string[]): Promise<Descriptor> {
  const configBytes = Buffer.from(JSON.stringify(img.config));
  const configDigest = digestOf(configBytes);
  await putBlob(store, configBytes, configDigest);
  const manifest = { ...img.manifest, config: { mediaType: MT.ociConfig, digest: configDigest, size: configBytes.length } };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const digest = digestOf(manifestBytes);
  await putBlob(store, manifestBytes, digest);
  syncBlobDirs(store, [configDigest, digest]);
  const platform: Platform = { architecture: img.config.architecture, os: img.config.os, ...(img.config.variant ? { variant: img.config.variant } : {}) };
  const desc: Descriptor = { mediaType: MT.ociManifest, digest, size: manifestBytes.length, platform };
  for (const name of names) await setName(store, name, desc);
  return desc;
}

import { createReadStream } from 'node:fs';
import { applyLayer, type ApplyResult } from './archive/apply.js';
import type { Store } from './content/store.js';
import { DistError } from './errors.js';
import { chainId } from './image/identity.js';
import { isIndex, type Descriptor, type Platform } from './image/mediatypes.js';
import { findImage } from './image/names.js';
import { selectManifest } from './image/platform.js';
import { readJsonBlob } from './image/walk.js';

export interface UnpackOptions {
  platform: Platform;
  signal?: AbortSignal;
  onLayer?: (i: number, layer: Descriptor, result: ApplyResult) => void;
  onWarning?: (message: string) => void;
}

export interface UnpackResult {
  manifest: string;
  diffIds: string[];
  chainId: string;
}

/**
 * Applies an image's layers in order to `dir`, checking each layer's digest and its DiffID
 * against the config, and returns the ChainID.
 * Errors: ENOENT (no such image, or a layer missing from the store), EINTEGRITY (a layer
 * whose digest or DiffID does not match: the directory then holds the layers before it),
 * EINVAL (malformed manifest or config), and apply's errors.
 */
export async function unpack(store: Store, nameOrDigest: string, dir: string, opts: UnpackOptions): Promise<UnpackResult> {
  const image = await findImage(store, nameOrDigest);
  let desc = image.descriptor;
  if (isIndex(desc.mediaType)) {
    const index = await readJsonBlob(store, desc.digest);
    desc = selectManifest(index.manifests ?? [], opts.platform);
  }
  const manifest = await readJsonBlob(store, desc.digest);
  if (!manifest.config?.digest || !Array.isArray(manifest.layers)) throw new DistError('EINVAL', `${desc.digest}: not an image manifest`);
  const config = await readJsonBlob(store, manifest.config.digest);
  const diffIds: string[] = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw new DistError('EINVAL', `${manifest.config.digest}: config lists ${diffIds.length} DiffIDs for ${manifest.layers.length} layers`);
  }
  for (const layer of manifest.layers as Descriptor[]) {
    if (!(await store.has(layer.digest))) throw new DistError('ENOENT', `layer ${layer.digest} is not in the store`, { hint: 'dist pull the image first' });
  }
  for (const [i, layer] of (manifest.layers as Descriptor[]).entries()) {
    const result = await applyLayer(dir, createReadStream(store.blobPath(layer.digest), { highWaterMark: 1 << 20 }), {
      signal: opts.signal,
      onWarning: opts.onWarning,
    });
    if (result.digest !== layer.digest && layer.digest.startsWith('sha256:')) {
      throw new DistError('EINTEGRITY', `layer ${i} ${layer.digest}: the stored blob hashes to ${result.digest} (run dist verify)`, { digest: layer.digest });
    }
    if (result.diffId !== diffIds[i]) {
      throw new DistError('EINTEGRITY', `layer ${i} ${layer.digest}: DiffID ${result.diffId} does not match the config's ${diffIds[i]}`, { digest: layer.digest });
    }
    opts.onLayer?.(i, layer, result);
  }
  return { manifest: desc.digest, diffIds, chainId: chainId(diffIds) };
}

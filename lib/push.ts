import { createReadStream } from 'node:fs';
import type { Store } from './content/store.js';
import { DistError } from './errors.js';
import { isIndex, isManifest, type Descriptor } from './image/mediatypes.js';
import { findImage } from './image/names.js';
import { mountSources, recordSources } from './image/sources.js';
import { readManifestBytes } from './image/walk.js';
import type { RegistryClient } from './remote/client.js';
import type { ImageRef } from './remote/locator.js';
import { blobsOf, pushImage, type ManifestBytes, type PushEvent, type PushImageResult } from './remote/pusher.js';

export interface PushOptions {
  /** Blob uploads at once. */
  concurrency: number;
  signal?: AbortSignal;
  onEvent?: (e: PushEvent) => void;
}

/**
 * Pushes an image from the store: a manifest, or an index with all its children, which the
 * store must hold. Every blob is checked to be in the store before anything is sent (ENOENT
 * naming the missing digests); a blob whose source repository on the same registry is recorded
 * (lib/image/sources.ts) is mounted. Afterwards the target repository is recorded as a source
 * of every blob. Errors: ENOENT (unknown name, missing blobs), those of lib/remote/pusher.ts.
 */
export async function push(store: Store, client: RegistryClient, nameOrDigest: string, target: ImageRef, opts: PushOptions): Promise<PushImageResult> {
  const image = await findImage(store, nameOrDigest);
  const top = await local(store, image.descriptor);
  const children: ManifestBytes[] = [];
  const manifests: { descriptor: Descriptor; doc: any }[] = [];
  const missing: string[] = [];
  const doc = JSON.parse(top.bytes.toString('utf8'));
  if (isIndex(top.descriptor.mediaType)) {
    for (const m of (doc.manifests ?? []) as Descriptor[]) {
      if (!(await store.has(m.digest))) {
        missing.push(m.digest);
        continue;
      }
      const child = await local(store, m);
      children.push(child);
      if (isManifest(m.mediaType)) manifests.push({ descriptor: m, doc: JSON.parse(child.bytes.toString('utf8')) });
    }
  } else if (isManifest(top.descriptor.mediaType)) {
    manifests.push({ descriptor: top.descriptor, doc });
  } else {
    throw new DistError('EINVAL', `${nameOrDigest}: unsupported media type ${top.descriptor.mediaType}`);
  }
  const blobs = blobsOf(manifests);
  for (const b of blobs) if (!(await store.has(b.descriptor.digest))) missing.push(b.descriptor.digest);
  if (missing.length) {
    throw new DistError('ENOENT', `${nameOrDigest}: ${missing.length} blob${missing.length > 1 ? 's' : ''} missing from the store: ${missing.join(', ')}`, { digest: missing[0] });
  }
  const result = await pushImage(
    client,
    target,
    {
      top,
      children,
      blobs,
      source: (desc) => ({ open: (start, end) => createReadStream(store.blobPath(desc.digest), { start, end: end - 1, highWaterMark: 1 << 20 }) }),
      mountFrom: (desc) => mountSources(store, desc.digest, target.host, target.repository),
    },
    { concurrency: opts.concurrency, tag: target.digest ? undefined : target.tag, signal: opts.signal, onEvent: opts.onEvent },
  );
  recordSources(store, target.host, target.repository, blobs.map((b) => b.descriptor.digest));
  return result;
}

/** A manifest or index from the store, verified, with its exact bytes. */
async function local(store: Store, desc: Descriptor): Promise<ManifestBytes> {
  const bytes = readManifestBytes(store, desc.digest);
  return { descriptor: { mediaType: desc.mediaType, digest: desc.digest, size: bytes.length }, bytes };
}

import { DistError } from './errors.js';
import { isIndex, isManifest, type Descriptor, type Platform } from './image/mediatypes.js';
import { formatPlatform, selectManifest } from './image/platform.js';
import type { RegistryClient } from './remote/client.js';
import { fetchManifest, openBlob } from './remote/fetcher.js';
import { formatRef, type ImageRef } from './remote/locator.js';
import { blobsOf, pushImage, type ManifestBytes, type PushEvent, type PushImageResult } from './remote/pusher.js';

export interface CopyOptions {
  /** Copy only this platform's manifest out of an index (default: the whole index). */
  platform?: Platform;
  /** Blob transfers at once. */
  concurrency: number;
  signal?: AbortSignal;
  onEvent?: (e: PushEvent | { event: 'platform'; platform: string; digest: string }) => void;
}

/**
 * Copies an image from one registry (or repository) to another, keeping every digest: the
 * manifests' exact bytes, verified on the way in, and each blob streamed from the source's GET
 * into the target's upload, hashed as it goes and checked before the upload is closed. Nothing
 * touches the disk. An index goes with all its platforms unless `platform` narrows the copy to
 * one manifest (then that manifest is what the target tag names: a filtered index would dangle).
 * Within one registry blobs are mounted from the source repository. Blobs the target already
 * has are skipped (HEAD), so a copy run again after an interruption sends only what is missing.
 *
 * Errors: ENOENT (source manifest or platform not found), EINTEGRITY, EREMOTE, and those of
 * lib/remote/pusher.ts.
 */
export async function copy(client: RegistryClient, src: ImageRef, dst: ImageRef, opts: CopyOptions): Promise<PushImageResult> {
  const { signal } = opts;
  let top: ManifestBytes = await fetchManifest(client, src, src.digest ?? src.tag!, undefined, signal);
  const children: ManifestBytes[] = [];
  const manifests: { descriptor: Descriptor; doc: any }[] = [];
  const parse = (m: ManifestBytes) => JSON.parse(m.bytes.toString('utf8'));
  if (isIndex(top.descriptor.mediaType)) {
    const entries: Descriptor[] = parse(top).manifests ?? [];
    if (opts.platform) {
      const chosen = selectManifest(entries.filter((m) => isManifest(m.mediaType)), opts.platform);
      opts.onEvent?.({ event: 'platform', platform: formatPlatform(chosen.platform), digest: chosen.digest });
      top = await fetchManifest(client, src, chosen.digest, [chosen.mediaType], signal);
      manifests.push({ descriptor: top.descriptor, doc: parse(top) });
    } else {
      for (const m of entries) {
        const child = await fetchManifest(client, src, m.digest, [m.mediaType], signal);
        if (isIndex(child.descriptor.mediaType)) throw new DistError('EINVAL', `${formatRef(src)}: nested index ${m.digest} is not supported`);
        children.push(child);
        manifests.push({ descriptor: child.descriptor, doc: parse(child) });
      }
    }
  } else if (isManifest(top.descriptor.mediaType)) {
    manifests.push({ descriptor: top.descriptor, doc: parse(top) });
  } else {
    throw new DistError('EINVAL', `${formatRef(src)}: unsupported media type ${top.descriptor.mediaType}`);
  }
  const sameRegistry = src.host === dst.host && src.repository !== dst.repository;
  return pushImage(
    client,
    dst,
    {
      top,
      children,
      blobs: blobsOf(manifests),
      source: (desc) => ({
        // `end` is always the blob's size (chunkSize below is Infinity: one PATCH, or one PUT),
        // so the source's body, from `start` to its end, is exactly the bytes asked for.
        open: async (start) => (await openBlob(client, src, desc.digest, { offset: start, size: desc.size, signal })).body,
      }),
      mountFrom: () => (sameRegistry ? [src.repository] : []),
      // One PATCH with the rest of the blob, streamed from the source: a reset asks the target
      // where it stands and reopens the source there (Range), so no chunk boundaries are needed.
      chunkSize: Infinity,
    },
    { concurrency: opts.concurrency, tag: dst.digest ? undefined : dst.tag, signal, onEvent: opts.onEvent },
  );
}

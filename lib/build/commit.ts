import type { Store } from '../content/store.js';
import { writeDiff, type DiffSummary } from '../archive/diff.js';
import type { Descriptor, Platform } from '../image/mediatypes.js';
import { addLayer, changeConfig, emptyImage, ingestLayer, LAYER_GZIP, loadImage, writeImage, type ConfigChanges, type ImageDraft, type LayerBlob } from './image.js';
import { baseRootfs } from './rootfs.js';

export interface CommitOptions {
  /** An image name or manifest digest in the store, or `empty`. */
  base: string;
  platform: Platform;
  /** Names for the new image in index.json. */
  names: string[];
  /** The history entry's comment. */
  message?: string;
  /** The history entry's created_by (default `dist commit`). */
  createdBy?: string;
  config?: ConfigChanges;
  /** Clamps layer times, and is the config's `created`, when set. */
  sourceDateEpoch?: number;
  signal?: AbortSignal;
}

export interface CommitResult {
  descriptor: Descriptor;
  layer: LayerBlob;
  summary: DiffSummary;
}

/** The draft a base names: `empty`, or an image in the store. */
export async function baseDraft(store: Store, base: string, platform: Platform, created: string): Promise<ImageDraft> {
  return base === 'empty' ? emptyImage(platform, created) : loadImage(store, base, platform);
}

/** `created` for a config and history: SOURCE_DATE_EPOCH when set, else now. */
export function createdAt(sourceDateEpoch: number | undefined): string {
  return new Date(sourceDateEpoch !== undefined ? sourceDateEpoch * 1000 : Date.now()).toISOString();
}

/**
 * Makes a new image whose last layer is the diff of `dir` against the base's root filesystem
 * (acido's build, docker's commit): the layer is streamed, gzipped, into the store; the config
 * gains the DiffID and a history entry (and any config changes); the manifest is written and
 * named. The base root filesystem comes from the ChainID-keyed cache (lib/build/rootfs.ts).
 *
 * Errors: ENOENT (no such base image or directory), and those of diff, unpack and the store.
 * A failure leaves no blob and no ingest behind, and names nothing.
 */
export async function commit(store: Store, dir: string, opts: CommitOptions): Promise<CommitResult> {
  const created = createdAt(opts.sourceDateEpoch);
  const img = await baseDraft(store, opts.base, opts.platform, created);
  const lower = await baseRootfs(store, img, opts.platform, opts.signal);
  return commitOnto(store, img, lower, dir, created, opts);
}

/**
 * commit once the base is resolved: `img` is the base's draft, `lower` its root filesystem,
 * `created` the date of the new history entry and config. For a caller that has the base
 * already (a build target, which copied `lower` to make `dir`), so it is not resolved twice.
 */
export async function commitOnto(
  store: Store,
  img: ImageDraft,
  lower: string,
  dir: string,
  created: string,
  opts: Omit<CommitOptions, 'base' | 'platform'>,
): Promise<CommitResult> {
  let summary!: DiffSummary;
  const layer = await ingestLayer(
    store,
    LAYER_GZIP,
    async (sink) => {
      summary = await writeDiff(lower, dir, sink, { compression: 'gzip', sourceDateEpoch: opts.sourceDateEpoch, signal: opts.signal });
      return summary;
    },
    opts.signal,
  );
  img = addLayer(img, layer, { created, created_by: opts.createdBy ?? 'dist commit', ...(opts.message ? { comment: opts.message } : {}) });
  if (opts.config) img = changeConfig(img, opts.config);
  const descriptor = await writeImage(store, img, opts.names);
  return { descriptor, layer, summary };
}

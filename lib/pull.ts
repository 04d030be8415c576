import { setMaxListeners } from 'node:events';
import pLimit from 'p-limit';
import { writeBlob } from './content/ingest.js';
import { putBlob, syncBlobDirs } from './content/writer.js';
import { Lease } from './content/lease.js';
import { ensureLayout, type Store } from './content/store.js';
import { DistError } from './errors.js';
import { cryptoSoon } from './lazy.js';
import { MANIFEST_TYPES, isIndex, isManifest, type Descriptor, type Platform } from './image/mediatypes.js';
import { listNames, localDescriptor, setName } from './image/names.js';
import { formatPlatform, selectManifest } from './image/platform.js';
import { readJsonBlob } from './image/walk.js';
import { recordSources } from './image/sources.js';
import type { RegistryClient } from './remote/client.js';
import { fetchManifest, openBlob, readBlob, resolve } from './remote/fetcher.js';
import { formatRef, type ImageRef } from './remote/locator.js';
import { fromFirst, mirrorPlaces } from './pull-mirrors.js';

/**
 * Blobs up to this size are fetched into memory and committed with `putBlob`, skipping the
 * ingest transaction. Measured on a 40-layer image of 33 KiB layers: the transaction (lock,
 * status files, streams) cost more CPU than the download. A blob this small is not worth
 * resuming, and racing writers of it are harmless.
 */
const SMALL_BLOB = 512 * 1024;

export type BlobKind = 'index' | 'manifest' | 'config' | 'layer';

export type PullEvent =
  | { event: 'resolved'; ref: string; digest: string; mediaType: string; size: number }
  | { event: 'platform'; platform: string; digest: string }
  | { event: 'blob'; status: 'exists' | 'start' | 'done' | 'shared'; kind: BlobKind; digest: string; size: number; resumedFrom?: number; fetched?: number }
  | { event: 'progress'; digest: string; bytes: number; size: number }
  | { event: 'done'; name: string; digest: string; blobs: number; fetched: number; existing: number };

export interface PullOptions {
  /** Platform to pick from an index (default: the caller's host platform). */
  platform: Platform;
  allPlatforms?: boolean;
  /** Parallel blob downloads. */
  concurrency: number;
  /** The name in index.json (default: the reference as given, canonicalised). */
  name?: string;
  signal?: AbortSignal;
  onEvent?: (e: PullEvent) => void;
  /** Registry mirrors to try first for every object, in order (`dist pull --mirror`). */
  mirrors?: readonly string[];
}

export interface PullResult {
  name: string;
  descriptor: Descriptor;
  /** Bytes downloaded (0 when everything was present). */
  fetched: number;
}

/**
 * Pulls an image into the store: resolves the reference, picks the platform from an index,
 * then fetches manifests, config and layers (concurrently, `opts.concurrency` at a time)
 * through the same ingest transactions as `dist ingest` (ref `<host>/<repo>@<digest>`, the
 * seed pipeline's), so concurrent pulls and pipelines share the work. Blobs already present
 * are skipped; partial ingests resume with Range. Finally names the image in index.json.
 * A lease keeps gc away from blobs committed before the name exists.
 *
 * Errors: those of the registry client (EREMOTE, ENOENT), EINTEGRITY/EBADSIZE from ingest,
 * EINVAL for malformed manifests, ENOENT when no manifest matches the platform.
 */
export async function pull(store: Store, client: RegistryClient, ref: ImageRef, opts: PullOptions): Promise<PullResult> {
  const emit = opts.onEvent ?? (() => {});
  // The first blob that fails stops the others (see allOrStop).
  const stopper = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stopper.signal]) : stopper.signal;
  // Every request in flight listens on the signal; Node warns on stderr past 10 listeners.
  setMaxListeners(Math.max(10, 4 * opts.concurrency + 10), signal);
  const name = opts.name ?? formatRef(ref);
  const places = mirrorPlaces(ref, opts.mirrors ?? []);
  /** One object's fetch, from the first mirror that has it, else the registry. */
  const via = <T>(fetch: (loc: ImageRef) => Promise<T>): Promise<T> => fromFirst(places, fetch, signal);
  // The top manifest is asked for first; the store is made ready (on a fresh root, ~10 ms of
  // file system work) and the lease taken while the registry answers. Nothing is committed
  // before both are done.
  const asked = resolveTop(store, client, ref, name, signal, via);
  // Awaited below; a failure that comes first must not count as unhandled meanwhile.
  asked.catch(() => {});
  let lease: Lease;
  try {
    await ensureLayout(store);
    lease = await Lease.create(store);
    // Every blob of the pull is hashed, and the top manifest too: node:crypto loads meanwhile.
    cryptoSoon();
  } catch (err) {
    stopper.abort(err);
    await asked.catch(() => {});
    throw err;
  }
  let fetched = 0;
  let existing = 0;
  const limit = pLimit(Math.max(1, opts.concurrency));
  try {
    const { top, bytes: topBytes } = await asked;
    emit({ event: 'resolved', ref: formatRef(ref), digest: top.digest, mediaType: top.mediaType, size: top.size });

    /** Every digest of the image, for recordSources and the done event's count. */
    const pulled: string[] = [];
    /** Digests committed by putBlob, whose directory entries are synced before naming. */
    const put: string[] = [];
    const blobRef = (digest: string) => `${ref.host}/${ref.repository}@${digest}`;

    /** Counts a blob; true (and reported) when the store has it already. */
    const present = async (desc: Descriptor, kind: BlobKind): Promise<boolean> => {
      pulled.push(desc.digest);
      if (!(await store.has(desc.digest))) return false;
      existing++;
      emit({ event: 'blob', status: 'exists', kind, digest: desc.digest, size: desc.size });
      return true;
    };
    /** Reports a blob committed by this pull (`written` bytes) or meanwhile by another (`shared`). */
    const finished = (desc: Descriptor, kind: BlobKind, shared: boolean, written: number, resumedFrom?: number): void => {
      if (shared) {
        existing++;
        emit({ event: 'blob', status: 'shared', kind, digest: desc.digest, size: desc.size });
        return;
      }
      fetched += written;
      emit({ event: 'blob', status: 'done', kind, digest: desc.digest, size: desc.size, fetched: written, ...(resumedFrom ? { resumedFrom } : {}) });
    };
    /** A blob held in memory (a manifest, a config, a small layer), committed by putBlob. */
    const putSmall = async (desc: Descriptor, kind: BlobKind, bytes: Buffer): Promise<void> => {
      const { existed } = await putBlob(store, bytes, desc.digest, desc.size);
      put.push(desc.digest);
      finished(desc, kind, existed, bytes.length);
    };

    /** A manifest or index: from the store, or fetched, verified and committed. */
    const getJson = async (desc: Descriptor, kind: BlobKind): Promise<any> => {
      await lease.add([desc.digest]);
      if (await present(desc, kind)) return readJsonBlob(store, desc.digest);
      const bytes = desc.digest === top.digest && topBytes ? topBytes : (await via((loc) => fetchManifest(client, loc, desc.digest, [desc.mediaType], signal))).bytes;
      await putSmall({ ...desc, size: bytes.length }, kind, bytes);
      return JSON.parse(bytes.toString('utf8'));
    };

    const getBlob = async (desc: Descriptor, kind: BlobKind): Promise<void> => {
      if (await present(desc, kind)) return;
      if (desc.size <= SMALL_BLOB) {
        emit({ event: 'blob', status: 'start', kind, digest: desc.digest, size: desc.size });
        await putSmall(desc, kind, await via((loc) => readBlob(client, loc, desc.digest, desc.size, signal)));
        return;
      }
      let held = 0;
      let got = 0;
      let last = 0;
      const result = await writeBlob(
        store,
        async (offset) => {
          emit({ event: 'blob', status: 'start', kind, digest: desc.digest, size: desc.size, ...(offset ? { resumedFrom: offset } : {}) });
          return (await via((loc) => openBlob(client, loc, desc.digest, { offset, size: desc.size, signal }))).body;
        },
        {
          ref: blobRef(desc.digest),
          expected: desc.digest,
          size: desc.size,
          resume: true,
          signal,
          onOpen: (n) => (held = n),
          onWrite: (n) => {
            got += n;
            if (got - last >= 1 << 20) {
              last = got;
              emit({ event: 'progress', digest: desc.digest, bytes: held + got, size: desc.size });
            }
          },
        },
      );
      finished(desc, kind, result.existed, result.written, held || undefined);
    };

    const pullManifest = async (desc: Descriptor): Promise<void> => {
      // Under the same limit as blobs: an index of many platforms is not fetched all at once.
      const m = await limit(() => getJson(desc, 'manifest'));
      if (!m.config?.digest || !Array.isArray(m.layers)) throw new DistError('EINVAL', `${desc.digest}: not an image manifest (no config or layers)`);
      const children: [Descriptor, BlobKind][] = [[m.config, 'config'], ...m.layers.map((l: Descriptor) => [l, 'layer'] as [Descriptor, BlobKind])];
      for (const [c] of children) {
        if (typeof c.digest !== 'string' || !Number.isSafeInteger(c.size) || c.size < 0) throw new DistError('EINVAL', `${desc.digest}: malformed descriptor in manifest`);
      }
      await lease.add(children.map(([c]) => c.digest));
      await allOrStop(
        children.map(([c, kind]) =>
          limit(() => {
            signal.throwIfAborted();
            return getBlob(c, kind);
          }),
        ),
        stopper,
      );
    };

    let named: Descriptor = top;
    if (isIndex(top.mediaType)) {
      const index = await getJson(top, 'index');
      const manifests: Descriptor[] = (index.manifests ?? []).filter((m: Descriptor) => isManifest(m.mediaType));
      if (opts.allPlatforms) {
        await allOrStop(manifests.map((m) => pullManifest(m)), stopper);
      } else {
        const chosen = selectManifest(manifests, opts.platform);
        emit({ event: 'platform', platform: formatPlatform(chosen.platform), digest: chosen.digest });
        await pullManifest(chosen);
        named = chosen;
      }
    } else if (isManifest(top.mediaType)) {
      await pullManifest(top);
    } else {
      throw new DistError('EINVAL', `${formatRef(ref)}: unsupported media type ${top.mediaType}`);
    }
    syncBlobDirs(store, put);
    // Where the blobs came from, so that a push to the same registry can mount them.
    recordSources(store, ref.host, ref.repository, pulled);
    await setName(store, name, named);
    emit({ event: 'done', name, digest: named.digest, blobs: pulled.length, fetched, existing });
    return { name, descriptor: named, fetched };
  } finally {
    await lease.end();
  }
}

/**
 * The descriptor of what `ref` names, and its bytes when the request brought them: from the
 * store when it holds the digest; by HEAD when re-pulling a name the store holds (an image
 * that has not changed then costs one cheap request, and Docker Hub does not count HEADs
 * against its limit); otherwise by GET at once, as skopeo does (the manifest is needed anyway).
 */
async function resolveTop(
  store: Store,
  client: RegistryClient,
  ref: ImageRef,
  name: string,
  signal: AbortSignal,
  via: <T>(fetch: (loc: ImageRef) => Promise<T>) => Promise<T>,
): Promise<{ top: Descriptor; bytes?: Buffer }> {
  if (ref.digest && (await store.has(ref.digest))) return { top: await localDescriptor(store, ref.digest) };
  if (!ref.digest && (await listNames(store)).some((n) => n.name === name)) return { top: await via((loc) => resolve(client, loc, ref.tag!, undefined, signal)) };
  const { descriptor, bytes } = await via((loc) => fetchManifest(client, loc, ref.digest ?? ref.tag!, MANIFEST_TYPES, signal));
  return { top: descriptor, bytes };
}

/**
 * Promise.all that, at the first failure, stops the rest and waits for them before throwing
 * that failure: queued blobs never start, and those in flight are aborted (a large blob's
 * ingest keeps its bytes for the next pull to resume). The command then exits with nothing
 * still writing, and no download goes on after the error is printed.
 */
async function allOrStop<T>(tasks: Promise<T>[], stopper: AbortController): Promise<T[]> {
  try {
    return await Promise.all(tasks);
  } catch (err) {
    stopper.abort(new DistError('EREMOTE', 'pull stopped: another blob failed'));
    await Promise.allSettled(tasks);
    throw err;
  }
}

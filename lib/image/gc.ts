import { readdir, rm, stat } from '../fsp.js';
import { join } from 'node:path';
import { listBlobs, type BlobInfo } from '../content/info.js';
import { leasedDigests, withGcLock } from '../content/lease.js';
import { listIngests, type IngestStatus } from '../content/info.js';
import type { Store } from '../content/store.js';
import { discardIngest, ingestDigest, isTempBlobName, lockDeadIngest, readStatus } from '../content/writer.js';
import { reachable } from './walk.js';

export interface GcResult {
  /** Blobs deleted (or that would be, with dryRun). */
  freed: BlobInfo[];
  bytes: number;
  /** Blobs kept because a live lease or active ingest holds them though no name reaches them. */
  held: string[];
  /** Refs of the dead ingests removed (or that would be, with dryRun). */
  ingests: string[];
}

/**
 * How long an interrupted ingest is kept for resume by default: 24 hours, the expiry
 * containerd's client gives the lease of a pull (`WithLease`), after which its content,
 * ingests included, is collected.
 */
export const DEFAULT_INGEST_AGE_MS = 24 * 3600 * 1000;

export interface GcOptions {
  dryRun?: boolean;
  /** Dead ingests untouched (updatedat, else data mtime) for longer are removed. */
  ingestAgeMs?: number;
}

/**
 * Garbage-collects the store, as named steps:
 * 1. lock: one gc at a time; pulls cannot add leases meanwhile;
 * 2. list: every committed blob (before reading leases, see Lease);
 * 3. mark: blobs held by live leases and by active ingests (their ref's digest), THEN
 *    everything reachable from index.json (indexes, manifests, configs, layers). The order
 *    matters: a pull names its image before it ends its lease, and ending a lease does not
 *    wait for gc. Read in the other order, a pull that names its image after gc read
 *    index.json and ends its lease before gc reads the leases had its fresh blobs deleted
 *    (seen in test/image/gc-race.test.ts, 2 lost images in 36 pulls). Read leases first, a
 *    lease gc did not see ended before the read, so its name was in index.json already.
 * 4. sweep: delete the rest (unless dryRun).
 * 5. tidy: temp files that `putBlob` left in ingest/ when its process died (older than a
 *    minute: a live one exists for milliseconds), and dead ingests (see deadIngests).
 * A live ingest (its writer's lock refreshed) is never touched.
 */
export async function gc(store: Store, opts: GcOptions = {}): Promise<GcResult> {
  return withGcLock(store, async () => {
    const blobs = await listBlobs(store);
    const leased = await leasedDigests(store);
    const ingests: string[] = [];
    for (const ingest of await listIngests(store)) {
      const maxAgeMs = opts.ingestAgeMs ?? DEFAULT_INGEST_AGE_MS;
      if (await deadIngest(store, ingest, maxAgeMs)) {
        if (opts.dryRun || (await removeIngest(store, ingest, maxAgeMs))) {
          ingests.push(ingest.ref);
          continue;
        }
      }
      if (ingest.digest) leased.add(ingest.digest);
    }
    const { names } = await reachable(store);
    const freed: BlobInfo[] = [];
    const held: string[] = [];
    for (const b of blobs) {
      if (names.has(b.digest)) continue;
      if (leased.has(b.digest)) {
        held.push(b.digest);
        continue;
      }
      if (!opts.dryRun) await rm(store.blobPath(b.digest), { force: true });
      freed.push(b);
    }
    if (!opts.dryRun) await removeDeadTempFiles(store);
    return { freed, bytes: freed.reduce((n, b) => n + b.size, 0), held, ingests };
  });
}

/**
 * An ingest gc removes: not live, and either its blob is committed already (its bytes can
 * never be needed: a resume would find the blob first) or it is untouched for over `maxAgeMs`.
 */
async function deadIngest(store: Store, ingest: IngestStatus, maxAgeMs: number): Promise<boolean> {
  if (ingest.live) return false;
  if (ingest.digest && (await store.has(ingest.digest))) return true;
  const touched = ingest.updatedAt ?? ingest.startedAt;
  return touched !== undefined && Date.now() - touched.getTime() > maxAgeMs;
}

/**
 * Removes an ingest under its lock. False when a writer holds it, or took it and wrote since
 * it was listed (the reasons are checked again under the lock).
 */
async function removeIngest(store: Store, ingest: IngestStatus, maxAgeMs: number): Promise<boolean> {
  const dir = join(store.ingestRoot, ingest.key);
  const lock = await lockDeadIngest(dir);
  if (!lock) return false;
  const s = await readStatus(dir);
  const now: IngestStatus = { ...ingest, ...s, ref: s.ref ?? '', size: s.size ?? 0, digest: ingestDigest(s), live: false };
  if (s.ref === undefined || !(await deadIngest(store, now, maxAgeMs))) {
    lock.release();
    return false;
  }
  await discardIngest(dir, lock);
  return true;
}

const TEMP_MAX_AGE_MS = 60_000;

async function removeDeadTempFiles(store: Store): Promise<void> {
  let names: string[];
  try {
    names = await readdir(store.ingestRoot);
  } catch {
    return;
  }
  const now = Date.now();
  for (const name of names.filter(isTempBlobName)) {
    const path = join(store.ingestRoot, name);
    const st = await stat(path).catch(() => undefined);
    if (st?.isFile() && now - st.mtimeMs > TEMP_MAX_AGE_MS) await rm(path, { force: true });
  }
}

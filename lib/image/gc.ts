import { readdir, rm, stat } from '../fsp.js';
import { join } from 'node:path';
import { listBlobs, type BlobInfo } from '../content/info.js';
import { leasedDigests, withGcLock } from '../content/lease.js';
import { listIngests } from '../content/info.js';
import type { Store } from '../content/store.js';
import { isTempBlobName } from '../content/writer.js';
import { reachable } from './walk.js';

export interface GcResult {
  /** Blobs deleted (or that would be, with dryRun). */
  freed: BlobInfo[];
  bytes: number;
  /** Blobs kept because a live lease or active ingest holds them though no name reaches them. */
  held: string[];
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
 *    minute: a live one exists for milliseconds).
 * Ingest directories themselves are never touched.
 */
export async function gc(store: Store, opts: { dryRun?: boolean } = {}): Promise<GcResult> {
  return withGcLock(store, async () => {
    const blobs = await listBlobs(store);
    const leased = await leasedDigests(store);
    for (const ingest of await listIngests(store)) {
      const m = /(sha(?:256|512):[a-f0-9]+)$/.exec(ingest.ref);
      if (m) leased.add(m[1]!);
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
    return { freed, bytes: freed.reduce((n, b) => n + b.size, 0), held };
  });
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

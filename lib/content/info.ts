import { readdir, stat, unlink } from '../fsp.js';
import { join } from 'node:path';
import { isDigest, parseDigest } from '../digest.js';
import { DistError, sysCode } from '../errors.js';
import { discardIngest, ingestDigest, ingestLive, lockDeadIngest, readStatus } from './writer.js';
import type { Store } from './store.js';

/** A committed blob. */
export interface BlobInfo {
  digest: string;
  size: number;
  /** Commit time (the blob's mtime). */
  createdAt: Date;
}

/** Every committed blob, sorted by digest. Entries that are not valid digests are ignored. */
export async function listBlobs(store: Store): Promise<BlobInfo[]> {
  const out: BlobInfo[] = [];
  for (const algorithm of await readdirOrEmpty(store.blobsDir)) {
    const dir = join(store.blobsDir, algorithm);
    for (const hex of await readdirOrEmpty(dir)) {
      const digest = `${algorithm}:${hex}`;
      if (!isDigest(digest)) continue;
      try {
        const st = await stat(join(dir, hex));
        if (st.isFile()) out.push({ digest, size: st.size, createdAt: st.mtime });
      } catch (err) {
        if (sysCode(err) !== 'ENOENT') throw err; // deleted while listing
      }
    }
  }
  return out.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
}

/** One committed blob's info. Errors: EINVAL (bad digest), ENOENT (not in the store). */
export async function blobInfo(store: Store, digest: string): Promise<BlobInfo> {
  const d = parseDigest(digest);
  try {
    const st = await stat(store.blobPath(d));
    return { digest: d.text, size: st.size, createdAt: st.mtime };
  } catch (err) {
    if (sysCode(err) === 'ENOENT') throw notFound(d.text);
    throw err;
  }
}

/** Deletes a blob. Errors: EINVAL (bad digest), ENOENT (not in the store). */
export async function deleteBlob(store: Store, digest: string): Promise<void> {
  const d = parseDigest(digest);
  try {
    await unlink(store.blobPath(d));
  } catch (err) {
    if (sysCode(err) === 'ENOENT') throw notFound(d.text);
    throw err;
  }
}

export function notFound(digest: string): DistError {
  return new DistError('ENOENT', `${digest}: not found in the store`, { digest });
}

/** An in-progress (or interrupted) ingest. */
export interface IngestStatus {
  ref: string;
  /** Bytes held so far. */
  size: number;
  total?: number;
  startedAt?: Date;
  updatedAt?: Date;
  /** The ingest directory name (hex of sha256(ref)). */
  key: string;
  /** The digest its bytes must have, when known (see ingestDigest). */
  digest?: string;
  /** True while a live process writes it (its lock is refreshed). */
  live: boolean;
}

/** Every ingest directory that has a ref, sorted by start time. Read without locks. */
export async function listIngests(store: Store): Promise<IngestStatus[]> {
  const out: IngestStatus[] = [];
  for (const key of await readdirOrEmpty(store.ingestRoot)) {
    const dir = join(store.ingestRoot, key);
    const s = await readStatus(dir);
    if (s.ref === undefined) continue; // being created or removed
    out.push({ ref: s.ref, size: s.size ?? 0, total: s.total, startedAt: s.startedAt, updatedAt: s.updatedAt, key, digest: ingestDigest(s), live: ingestLive(dir) });
  }
  return out.sort((a, b) => (a.startedAt?.getTime() ?? 0) - (b.startedAt?.getTime() ?? 0));
}

/**
 * Discards an interrupted ingest (containerd's Abort): its bytes and status files go. Fails
 * with ELOCKED when a live process is writing it (it is left alone), and ENOENT when there is
 * no such ingest.
 */
export async function abortIngest(store: Store, ref: string): Promise<void> {
  const dir = store.ingestDir(ref);
  const held = await readStatus(dir);
  if (held.ref === undefined) throw new DistError('ENOENT', `no active ingest ${JSON.stringify(ref)}`);
  const lock = await lockDeadIngest(dir);
  if (!lock) throw new DistError('ELOCKED', `${JSON.stringify(ref)} is being written by a live process; not aborted`, { hint: 'stop that process first' });
  await discardIngest(dir, lock);
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (sysCode(err) === 'ENOENT') return [];
    throw err;
  }
}

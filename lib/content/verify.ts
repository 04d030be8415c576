import { createReadStream } from 'node:fs';
import { rm } from '../fsp.js';
import { hasher, parseDigest } from '../digest.js';
import { listBlobs } from './info.js';
import type { Store } from './store.js';

export interface VerifyReport {
  digest: string;
  ok: boolean;
  /** What the bytes hash to, when corrupt. */
  found?: string;
  size: number;
  removed?: boolean;
}

/**
 * Re-hashes every blob (streamed) and reports each; with `remove`, corrupt blobs are
 * deleted. `onBlob` sees each report as it is made.
 */
export async function verifyStore(store: Store, opts: { remove?: boolean; onBlob?: (r: VerifyReport) => void | Promise<void>; signal?: AbortSignal } = {}): Promise<VerifyReport[]> {
  const out: VerifyReport[] = [];
  for (const b of await listBlobs(store)) {
    opts.signal?.throwIfAborted();
    const d = parseDigest(b.digest);
    const h = hasher(d.algorithm);
    for await (const chunk of createReadStream(store.blobPath(d), { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
    const found = `${d.algorithm}:${h.digest('hex')}`;
    const report: VerifyReport = { digest: b.digest, ok: found === b.digest, size: b.size };
    if (!report.ok) {
      report.found = found;
      if (opts.remove) {
        await rm(store.blobPath(d), { force: true });
        report.removed = true;
      }
    }
    out.push(report);
    await opts.onBlob?.(report);
  }
  return out;
}

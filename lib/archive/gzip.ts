import { Transform, type TransformCallback } from 'node:stream';
import { gzip as gzipAsync, gzipSync } from 'node:zlib';

/** Bytes of tar per gzip member. Measured on a 126 MB Debian layer: 4 MiB members add 0.01% to the size. */
const MEMBER = 4 << 20;
/**
 * zlib level 1, not the default 6. Measured on a 126 MB Debian layer (one thread): level 6 took
 * 4.49 s for 46.42 MB, level 4 2.46 s for 47.13 MB, level 3 1.60 s for 48.27 MB, level 1
 * 1.45 s for 49.15 MB. A whole dist commit of it: 2.94 s of CPU at level 3, 2.70 s at level 1.
 * Level 1 keeps a commit well under umoci repack and buildah commit on this 2-core machine for
 * 6% more bytes than level 6.
 */
const GZIP_LEVEL = 1;
/**
 * zlib's output buffer per call. The default 16 KiB made ~100 round trips to the main thread
 * per member: 371 ms of a 3.4 s commit's profile went to zlib's processCallback.
 */
const OUT_CHUNK = 1 << 20;
/** Members compressing at once: one per thread of libuv's pool (4 by default). */
const IN_FLIGHT = 4;

/**
 * gzip on every core: the input is cut into 4 MiB pieces, each compressed on libuv's thread
 * pool as its own gzip member, and the members are written in order. Concatenated members are
 * one valid gzip stream (RFC 1952 §2.2) that gunzip, Go's compress/gzip (containerd, podman,
 * umoci) and Node's zlib all read whole. The output is deterministic: the cut points depend on
 * the input alone, and every member's header has mtime 0 and OS 3 (Unix).
 *
 * Why: one zlib stream compresses ~25 MB/s on this machine (level 6); a commit of a Debian
 * package install spent two thirds of its time there. Memory stays bounded: at most
 * `IN_FLIGHT` pieces and their outputs are held.
 */
export function parallelGzip(): Transform {
  let piece = Buffer.allocUnsafe(MEMBER);
  let filled = 0;
  let total = 0;
  const queue: Promise<Buffer>[] = [];
  const compress = (buf: Buffer) =>
    new Promise<Buffer>((resolve, reject) => gzipAsync(buf, { level: GZIP_LEVEL, chunkSize: OUT_CHUNK }, (err, out) => (err ? reject(err) : resolve(out))));
  const t: Transform = new Transform({
    async transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        total += chunk.length;
        let at = 0;
        while (at < chunk.length) {
          const n = Math.min(chunk.length - at, MEMBER - filled);
          chunk.copy(piece, filled, at, at + n);
          filled += n;
          at += n;
          if (filled === MEMBER) {
            queue.push(compress(piece));
            piece = Buffer.allocUnsafe(MEMBER);
            filled = 0;
            // Backpressure: wait for the oldest member before taking more.
            while (queue.length >= IN_FLIGHT) t.push(await queue.shift()!);
          }
        }
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    async flush(cb: TransformCallback) {
      try {
        if (filled > 0 || total === 0) queue.push(filled > 0 ? compress(piece.subarray(0, filled)) : Promise.resolve(gzipSync(Buffer.alloc(0), { level: GZIP_LEVEL })));
        while (queue.length) t.push(await queue.shift()!);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
  return t;
}

import { Writable } from 'node:stream';
import type { Readable } from 'node:stream';
import { DistError, isDistError } from '../errors.js';
import { streamPromises } from '../lazy.js';
import { canLend, type Lending } from '../lend.js';
import { openWriter, type Writer } from './writer.js';
import type { Store } from './store.js';

export interface WriteBlobOptions {
  ref: string;
  expected?: string;
  size?: number;
  /**
   * The blob offset at which `body` starts (default 0). Held bytes before it are kept; bytes of
   * `body` that the ingest already holds are read and skipped (a restarted pipe).
   */
  bodyOffset?: number;
  /** The body can start anywhere (HTTP Range): it is opened at the held offset. */
  resume?: boolean;
  signal?: AbortSignal;
  onWait?: (since: Date) => void;
  /** Called once the writer is open, with the number of bytes already held (resume). */
  onOpen?: (held: number) => void;
  /** Called after each write into the store with the bytes it added (for progress). */
  onWrite?: (bytes: number) => void;
}

export interface WriteBlobResult {
  digest: string;
  /** True when the blob was already committed and the body was never read. */
  existed: boolean;
  /** Bytes taken from `body` into the store (skipped bytes excluded). */
  written: number;
}

/**
 * Streams `body()` into the store under the ingest transaction `ref`, and commits.
 * `body` is a thunk so that nothing is opened or read when the blob already exists; it is
 * called with the blob offset it must start at (the held bytes with `resume`, else
 * `bodyOffset` or 0).
 *
 * On a size or digest mismatch the ingest is discarded (EBADSIZE / EINTEGRITY). On any other
 * failure (a broken or short stream, ENOSPC, abort) the ingest is kept for resume.
 */
export async function writeBlob(store: Store, body: (offset: number) => Readable | Lending | Promise<Readable | Lending>, opts: WriteBlobOptions): Promise<WriteBlobResult> {
  const opened = await openWriter(store, {
    ref: opts.ref,
    expected: opts.expected,
    total: opts.size,
    signal: opts.signal,
    onWait: opts.onWait,
  });
  if (opened.exists) return { digest: opened.digest, existed: true, written: 0 };
  const writer = opened.writer;
  opts.onOpen?.(writer.offset);
  try {
    const start = opts.resume ? writer.offset : (opts.bodyOffset ?? 0);
    if (start > writer.offset) {
      throw new DistError('EINVAL', `stream starts at offset ${start} but the ingest holds only ${writer.offset} bytes`, {
        hint: `resume from offset ${writer.offset}`,
      });
    }
    const sink = new IngestSink(writer, writer.offset - start, opts.onWrite);
    const source = await body(start);
    // A lending source (a blob from the registry) hands over each chunk as undici delivers it, to
    // be hashed and written at once, with no stream in between (lib/lend.ts).
    if (canLend(source)) await source.lend((chunk) => sink.take([chunk]));
    else await streamPromises().pipeline(source, sink, { signal: opts.signal });
    if (writer.total !== undefined && writer.offset < writer.total) {
      throw new DistError(
        'EBADSIZE',
        `${opts.expected ?? opts.ref}: stream ended at ${writer.offset} of ${writer.total} bytes; the ingest is kept for resume`,
        { expected: writer.total, found: writer.offset, short: true },
      );
    }
    const digest = await writer.commit();
    return { digest, existed: false, written: sink.written };
  } catch (err) {
    if (isDistError(err, 'EBADSIZE') && !err.data.short) await writer.abort();
    else await writer.close().catch(() => {});
    throw err;
  }
}

/** A Writable into a Writer that first discards `skip` bytes (already held by a resumed ingest). */
export class IngestSink extends Writable {
  written = 0;
  constructor(
    private readonly writer: Writer,
    private skip: number,
    private readonly onWrite?: (bytes: number) => void,
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  /** Writes chunks into the store synchronously, after the bytes still to skip. */
  take(chunks: Buffer[]): void {
    const bufs: Buffer[] = [];
    for (const chunk of chunks) {
      if (this.skip >= chunk.length) {
        this.skip -= chunk.length;
      } else if (this.skip > 0) {
        bufs.push(chunk.subarray(this.skip));
        this.skip = 0;
      } else {
        bufs.push(chunk);
      }
    }
    if (bufs.length === 0) return;
    this.writer.write(bufs);
    let n = 0;
    for (const b of bufs) n += b.length;
    this.written += n;
    this.onWrite?.(n);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    try {
      this.take(chunks.map((c) => c.chunk));
    } catch (err) {
      return callback(err as Error);
    }
    callback();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }
}

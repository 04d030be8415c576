/**
 * A body that can lend its chunks: `onChunk` is called synchronously with each, and a chunk is
 * valid only during the call (it is a view of a buffer the next read reuses), so the caller
 * hashes or writes it at once and copies what it keeps. This is how pull and fetch move blob
 * bytes from undici's dispatch handler to a file or stdout with no stream in between (see
 * lib/remote/transport.ts). The promise settles at the end of the body; if `onChunk` throws, reading
 * stops and the promise rejects with that error.
 */
export interface Lending {
  lend(onChunk: (chunk: Buffer) => void): Promise<void>;
}

export function canLend(body: unknown): body is Lending {
  return typeof (body as Partial<Lending> | undefined)?.lend === 'function';
}

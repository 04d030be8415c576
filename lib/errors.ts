/**
 * The fixed vocabulary of error kinds. Callers branch on `code`, never on the message.
 *
 * - `EINVAL`     malformed input: a digest, a reference, a flag value, a manifest.
 * - `ENOENT`     the named blob, ingest, image or remote object does not exist.
 * - `EEXIST`     the object already exists (most callers treat this as success).
 * - `EINTEGRITY` bytes do not hash to the expected digest.
 * - `EBADSIZE`   a stream is longer or shorter than the expected size.
 * - `ELOCKED`    another process holds the lock and waiting was not allowed or timed out.
 * - `EREMOTE`    the registry or the network failed.
 * - `EUNSAFE`    hostile input was refused (path escapes, invalid whiteouts, ...).
 * - `EIO`        the local file system failed (ENOSPC, EACCES, ...), wrapped with context.
 */
export type ErrorCode =
  | 'EINVAL'
  | 'ENOENT'
  | 'EEXIST'
  | 'EINTEGRITY'
  | 'EBADSIZE'
  | 'ELOCKED'
  | 'EREMOTE'
  | 'EUNSAFE'
  | 'EIO';

export interface ErrorData {
  /** A hint for humans: what to do next. */
  hint?: string;
  expected?: string | number;
  found?: string | number;
  digest?: string;
  cause?: unknown;
  [key: string]: unknown;
}

/** The one base class of every error dist raises on purpose. */
export class DistError extends Error {
  readonly code: ErrorCode;
  readonly data: ErrorData;
  constructor(code: ErrorCode, message: string, data: ErrorData = {}) {
    super(message, data.cause !== undefined ? { cause: data.cause } : undefined);
    this.name = 'DistError';
    this.code = code;
    this.data = data;
  }
}

/** True when `err` is a DistError with the given code (or any code when none is given). */
export function isDistError(err: unknown, code?: ErrorCode): err is DistError {
  return err instanceof DistError && (code === undefined || err.code === code);
}

/** Node's system errors carry a string `code` such as 'ENOENT'. */
export function sysCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string'
    ? (err as { code: string }).code
    : undefined;
}

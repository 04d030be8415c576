import type { ServerResponse } from 'node:http';
import { isDistError } from '../errors.js';
import { sendJson } from './context.js';

/**
 * The distribution spec's error codes and the HTTP status each is answered with (distribution's
 * `registry/api/errcode/register.go`; UNAVAILABLE is distribution's too, for a mirror whose
 * upstream failed; NOT_FOUND answers a path no route matches). One table: a handler names a
 * code, never a status.
 */
const ERROR_STATUS = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  NOT_FOUND: 404,
  PAGINATION_NUMBER_INVALID: 400,
  RANGE_INVALID: 416,
  SIZE_INVALID: 400,
  TOO_LARGE: 413,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  UNAVAILABLE: 503,
} as const;

export type RegistryCode = keyof typeof ERROR_STATUS;

/** An error a handler answers with: a spec code, a message, and optional detail. */
export class RegistryError extends Error {
  constructor(
    readonly code: RegistryCode,
    message: string,
    readonly detail?: unknown,
    /** Extra response headers (Content-Range on a 416, WWW-Authenticate on a 401). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

/**
 * Maps what a handler threw to the error sent: RegistryErrors as they are, the store's bad
 * digests as DIGEST_INVALID, an upstream that failed as UNAVAILABLE. Anything else is a bug or
 * a failing disk: 500 with its message (never a stack).
 */
function toRegistryError(err: unknown): RegistryError | { status: 500; code: 'UNKNOWN'; message: string; headers: Record<string, string>; detail?: unknown } {
  if (err instanceof RegistryError) return err;
  if (isDistError(err, 'EINVAL') && /digest/.test(err.message)) return new RegistryError('DIGEST_INVALID', err.message);
  if (isDistError(err, 'EREMOTE') || isDistError(err, 'EINTEGRITY') || isDistError(err, 'EBADSIZE')) return new RegistryError('UNAVAILABLE', err.message);
  return { status: 500, code: 'UNKNOWN', message: err instanceof Error ? err.message : String(err), headers: {} };
}

/** Sends `{"errors":[{code,message,detail}]}` with the code's status (no body for HEAD). */
export function sendError(res: ServerResponse, err: unknown, head: boolean): void {
  const e = toRegistryError(err);
  if (res.headersSent) {
    // Mid-body: the client must see a broken response, never a short one that looks whole.
    res.destroy();
    return;
  }
  sendJson({ res, head }, e.status, { errors: [{ code: e.code, message: e.message, ...(e.detail !== undefined ? { detail: e.detail } : {}) }] }, e.headers);
}

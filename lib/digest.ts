import type { Hash } from 'node:crypto';
import { crypto } from './lazy.js';
import { DistError } from './errors.js';

/** Supported digest algorithms and the length of their lowercase hex encoding. */
const ALGORITHMS: Record<string, number> = { sha256: 64, sha512: 128 };

export type Algorithm = 'sha256' | 'sha512';

/** A parsed, validated digest. `hex` is safe to use as a file name. */
export interface Digest {
  algorithm: Algorithm;
  hex: string;
  /** The canonical text form `<algorithm>:<hex>`. */
  text: string;
}

const HEX = /^[a-f0-9]+$/;

/**
 * Parses and validates a digest string, before any file system access.
 * Only lowercase hex of the exact length is accepted, so the result never contains path
 * characters. Throws `EINVAL` for anything else (`sha256:../../x`, uppercase, wrong length,
 * unknown algorithm).
 */
export function parseDigest(text: string): Digest {
  const colon = text.indexOf(':');
  if (colon <= 0) throw invalid(text, 'expected <algorithm>:<hex>');
  const algorithm = text.slice(0, colon);
  const hex = text.slice(colon + 1);
  const length = ALGORITHMS[algorithm];
  if (length === undefined) throw invalid(text, `unsupported algorithm "${algorithm}" (sha256 or sha512)`);
  if (hex.length !== length || !HEX.test(hex)) {
    throw invalid(text, `${algorithm} needs ${length} lowercase hex characters`);
  }
  return { algorithm: algorithm as Algorithm, hex, text };
}

function invalid(text: string, why: string): DistError {
  const shown = text.length > 140 ? `${text.slice(0, 140)}...` : text;
  return new DistError('EINVAL', `invalid digest ${JSON.stringify(shown)}: ${why}`, { found: shown });
}

/** True when `text` is a valid digest. */
export function isDigest(text: string): boolean {
  try {
    parseDigest(text);
    return true;
  } catch {
    return false;
  }
}

/** A new running hash for the algorithm. */
export function hasher(algorithm: Algorithm = 'sha256'): Hash {
  return crypto().createHash(algorithm);
}

/** The digest of an in-memory buffer or string (small things: manifests, refs, chain ids). */
export function digestOf(data: string | Uint8Array, algorithm: Algorithm = 'sha256'): string {
  return `${algorithm}:${crypto().createHash(algorithm).update(data).digest('hex')}`;
}

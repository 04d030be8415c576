import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { readFile } from '../fsp.js';
import { DistError, sysCode } from '../errors.js';
import { digestOf, parseDigest } from '../digest.js';
import type { Store } from '../content/store.js';
import { isIndex, isManifest, MAX_MANIFEST_BYTES, REF_NAME, type Descriptor } from './mediatypes.js';

/** The parsed `index.json` of a store. A missing file reads as an empty index. */
export async function readIndex(store: Store): Promise<{ manifests: Descriptor[]; [k: string]: unknown }> {
  let text: string;
  try {
    text = await readFile(store.indexPath, 'utf8');
  } catch (err) {
    if (sysCode(err) === 'ENOENT') return { schemaVersion: 2, manifests: [] };
    throw err;
  }
  try {
    const index = JSON.parse(text);
    if (!Array.isArray(index.manifests)) throw new Error('no manifests array');
    return index;
  } catch (err) {
    throw new DistError('EINVAL', `${store.indexPath}: not a valid OCI index: ${(err as Error).message}`);
  }
}

/**
 * Reads a manifest or index blob from the store, verified and bounded to 4 MiB.
 * Errors: ENOENT (not in the store), EINVAL (too large or not JSON), EINTEGRITY.
 */
export async function readJsonBlob<T = any>(store: Store, digest: string): Promise<T> {
  const buf = readManifestBytes(store, digest);
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    throw new DistError('EINVAL', `${digest}: not valid JSON`, { digest });
  }
}

/**
 * The exact bytes of a manifest, index or config blob in the store, verified and bounded to
 * 4 MiB (push, serve and export send them as stored). Synchronous: small, and bounded before
 * it is read. Errors: ENOENT (not in the store), EINVAL (too large), EINTEGRITY.
 */
export function readManifestBytes(store: Store, digest: string): Buffer {
  const d = parseDigest(digest);
  let fd: number;
  try {
    fd = openSync(store.blobPath(d), 'r');
  } catch (err) {
    if (sysCode(err) === 'ENOENT') throw new DistError('ENOENT', `${digest}: not in the store`, { digest });
    throw err;
  }
  let buf: Buffer;
  try {
    const { size } = fstatSync(fd);
    if (size > MAX_MANIFEST_BYTES) {
      throw new DistError('EINVAL', `${digest}: ${size} bytes is over the 4 MiB limit for manifests`, { digest });
    }
    buf = readFileSync(fd);
  } finally {
    closeSync(fd);
  }
  if (digestOf(buf, d.algorithm) !== d.text) throw new DistError('EINTEGRITY', `${digest}: blob is corrupt`, { digest });
  return buf;
}

export interface Reached {
  /** digest -> names (index.json ref names) that reach it. */
  names: Map<string, Set<string>>;
  /** Digests named by a reachable manifest or index but missing from the store. */
  missing: Set<string>;
}

/**
 * Marks everything reachable from index.json: indexes, manifests, configs and layers.
 * A child missing from the store (a single-platform pull of an index) is recorded, not an
 * error.
 */
export async function reachable(store: Store): Promise<Reached> {
  const names = new Map<string, Set<string>>();
  const missing = new Set<string>();
  const index = await readIndex(store);
  const visit = async (desc: Descriptor, name: string): Promise<void> => {
    let set = names.get(desc.digest);
    if (set?.has(name)) return;
    if (!set) names.set(desc.digest, (set = new Set()));
    set.add(name);
    if (!isIndex(desc.mediaType) && !isManifest(desc.mediaType)) return;
    let doc: any;
    try {
      doc = await readJsonBlob(store, desc.digest);
    } catch (err) {
      if (err instanceof DistError && err.code === 'ENOENT') {
        missing.add(desc.digest);
        return;
      }
      throw err;
    }
    const children: Descriptor[] = [];
    if (Array.isArray(doc.manifests)) children.push(...doc.manifests);
    if (doc.config) children.push(doc.config);
    if (Array.isArray(doc.layers)) children.push(...doc.layers);
    if (doc.subject) children.push(doc.subject);
    for (const child of children) {
      if (child && typeof child.digest === 'string') await visit(child, name);
    }
  };
  for (const desc of index.manifests) {
    const name = desc.annotations?.[REF_NAME] ?? desc.digest;
    await visit(desc, name);
  }
  return { names, missing };
}

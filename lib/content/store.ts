import { statSync } from 'node:fs';
import { link, mkdirp, tempName, unlink, writeFile } from '../fsp.js';
import { join, resolve } from 'node:path';
import { parseDigest, type Digest } from '../digest.js';
import { sysCode } from '../errors.js';
import { crypto } from '../lazy.js';

/** The media type of an OCI image index, which `index.json` is. */
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

/**
 * A local content store: a directory that is an OCI image layout at all times, plus the
 * containerd-style `ingest/` directory for in-progress writes.
 *
 * ```
 * <root>/oci-layout                  {"imageLayoutVersion":"1.0.0"}
 * <root>/index.json                  named images (org.opencontainers.image.ref.name)
 * <root>/blobs/<alg>/<hex>           committed, verified, read-only blobs
 * <root>/ingest/<sha256(ref)>/       ref, data, total, startedat, updatedat, lock/
 * ```
 *
 * A Store value is only paths; it holds no open files and may be shared freely.
 */
export class Store {
  readonly root: string;
  constructor(root: string) {
    this.root = resolve(root);
  }

  get blobsDir(): string {
    return join(this.root, 'blobs');
  }

  get ingestRoot(): string {
    return join(this.root, 'ingest');
  }

  get indexPath(): string {
    return join(this.root, 'index.json');
  }

  /** The path of a blob. The digest is validated first, so the path never escapes the store. */
  blobPath(digest: string | Digest): string {
    const d = typeof digest === 'string' ? parseDigest(digest) : digest;
    return join(this.root, 'blobs', d.algorithm, d.hex);
  }

  /** The ingest directory of a ref: `ingest/<hex(sha256(ref))>`, fixed length and path-safe. */
  ingestDir(ref: string): string {
    return join(this.root, 'ingest', crypto().createHash('sha256').update(ref).digest('hex'));
  }

  /**
   * True when the blob is committed. A synchronous stat: a pull asks this several times per
   * blob, and each fs/promises call is a thread-pool round trip costing far more than the
   * stat itself (profiled on a 40-layer pull).
   */
  async has(digest: string | Digest): Promise<boolean> {
    return statSync(this.blobPath(digest), { throwIfNoEntry: false })?.isFile() ?? false;
  }
}

/** Where the store lives: `--root`, else `$DIST_ROOT`, else `./.content`. */
export function resolveRoot(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return resolve(flag || env.DIST_ROOT || '.content');
}

/**
 * Opens a store, creating the OCI layout files when missing. Creation is idempotent and
 * safe to race: each file is written to a temp name and renamed into place only if absent.
 */
export async function openStore(root: string): Promise<Store> {
  const store = new Store(root);
  await ensureLayout(store);
  return store;
}

/** Creates the OCI layout files of `store` when missing (see openStore). */
export async function ensureLayout(store: Store): Promise<void> {
  try {
    // Every command opens the store: one synchronous stat, not fs/promises and its threads.
    statSync(store.indexPath);
    return;
  } catch (err) {
    if (sysCode(err) !== 'ENOENT') throw err;
  }
  mkdirp(join(store.blobsDir, 'sha256'));
  mkdirp(store.ingestRoot);
  await createIfAbsent(join(store.root, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}\n');
  await createIfAbsent(store.indexPath, `${JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] })}\n`);
}

// link(2) publishes a fully written file and fails if the name exists, so a concurrent reader
// never sees a half-written index.json and a racing creator never overwrites one.
async function createIfAbsent(path: string, text: string): Promise<void> {
  const tmp = tempName(path);
  await writeFile(tmp, text, { flush: true });
  try {
    await link(tmp, path);
  } catch (err) {
    if (sysCode(err) !== 'EEXIST') throw err;
  } finally {
    await unlink(tmp);
  }
}

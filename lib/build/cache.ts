import type { Hash } from 'node:crypto';
import { closeSync, constants, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { Store } from '../content/store.js';
import { writeFileAtomic } from '../fsp.js';
import { hasher } from '../digest.js';
import { mkdirp } from '../fsp.js';
import { readJsonBlob } from '../image/walk.js';
import { DistError, sysCode } from '../errors.js';
import type { Target } from './spec.js';

/**
 * The step cache: a target's inputs (its base manifest digest, its actions, and the content of
 * every host file it reads) hash to a key; the key maps to the manifest the target built.
 * `<root>/build/cache/<hex>` holds that manifest digest. An entry is used only while the
 * manifest, its config and its layers are all in the store (so `dist gc` can never make a hit
 * point at nothing).
 */
function cacheDir(store: Store): string {
  return join(store.root, 'build', 'cache');
}

/** The cache key of a target built on `baseDigest` (a manifest digest, or `empty`). */
export async function stepKey(target: Target, baseDigest: string, extra: Record<string, unknown>, signal?: AbortSignal): Promise<string> {
  const h = hasher();
  const inputs = {
    v: 1,
    base: baseDigest,
    ...extra,
    expand: target.expand ? fileDigest(target.expand, 'expand') : null,
    copy: [] as unknown[],
    install: [] as string[],
    run: target.run ?? null,
    pre: target.pre ?? null,
    post: target.post ?? null,
    network: target.network,
    config: target.config,
  };
  for (const c of target.copy) {
    signal?.throwIfAborted();
    inputs.copy.push({ dest: c.dest, tree: treeDigest(c.src) });
  }
  for (const deb of target.install) inputs.install.push(fileDigest(deb, 'install'));
  h.update(JSON.stringify(inputs));
  return h.digest('hex');
}

/** The content digest of a host file a target names (`expand`, `install`); a symlink is followed. */
function fileDigest(path: string, key: string): string {
  const h = hasher();
  try {
    hashFile(h, path, true);
  } catch (err) {
    throw new DistError(sysCode(err) === 'ENOENT' ? 'ENOENT' : 'EIO', `${key}: ${path}: ${sysCode(err) === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  return h.digest('hex');
}

/** A digest of a host tree: every name, type, mode, owner, mtime second, link target and content. */
function treeDigest(root: string): string {
  const h = hasher();
  const walk = (p: Buffer, rel: string) => {
    let st;
    try {
      st = lstatSync(p);
    } catch (err) {
      throw new DistError(sysCode(err) === 'ENOENT' ? 'ENOENT' : 'EIO', `copy: ${root}: ${sysCode(err) === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
    }
    h.update(`${rel}\0${st.mode}\0${st.uid}\0${st.gid}\0${Math.floor(st.mtimeMs / 1000)}\0${st.size}\0${st.rdev}\0`);
    if (st.isSymbolicLink()) h.update(readlinkSync(p));
    else if (st.isFile()) hashFile(h, p);
    else if (st.isDirectory()) {
      for (const n of readdirSync(p, { encoding: 'buffer' }).sort(Buffer.compare)) walk(Buffer.concat([p, Buffer.from('/'), n]), `${rel}/${n.toString('latin1')}`);
    }
  };
  walk(Buffer.from(root), '');
  return h.digest('hex');
}

/**
 * The read buffer of hashFile, one for all files: a copy tree can hold thousands, and hashFile
 * is synchronous, so no two calls ever use it at once.
 */
const readBuffer = Buffer.allocUnsafe(1 << 20);

/**
 * Hashes a file in 1 MiB reads (synchronous, flat memory whatever its size). A final symlink
 * is followed only with `follow` (a walked tree's entry was lstat'ed as a regular file).
 */
function hashFile(h: Hash, p: string | Buffer, follow = false): void {
  const fd = openSync(p, constants.O_RDONLY | (follow ? 0 : constants.O_NOFOLLOW));
  try {
    for (let n; (n = readSync(fd, readBuffer, 0, readBuffer.length, null)) > 0; ) h.update(readBuffer.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

/** The manifest digest cached under `key`, when it and everything it names are in the store. */
export async function cacheLookup(store: Store, key: string): Promise<string | undefined> {
  let digest: string;
  try {
    digest = readFileSync(join(cacheDir(store), key), 'utf8').trim();
  } catch {
    return undefined;
  }
  try {
    const manifest = await readJsonBlob(store, digest);
    for (const d of [manifest.config, ...(manifest.layers ?? [])]) if (!(await store.has(d.digest))) return undefined;
  } catch {
    return undefined;
  }
  return digest;
}

/** Records what `key` built. */
export async function cacheStore(store: Store, key: string, manifestDigest: string): Promise<void> {
  mkdirp(cacheDir(store));
  await writeFileAtomic(join(cacheDir(store), key), `${manifestDigest}\n`);
}

import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Store } from '../content/store.js';
import { sysCode } from '../errors.js';
import type { Platform } from '../image/mediatypes.js';
import { unpack } from '../unpack.js';
import { draftChainId, type ImageDraft } from './image.js';

/** Where unpacked base root filesystems are kept, one directory per ChainID. */
function rootfsCacheDir(store: Store): string {
  return join(store.root, 'build', 'rootfs');
}

/**
 * The unpacked root filesystem of a draft's layers, from a cache keyed by ChainID: a second
 * commit or build on the same base does not unpack it again. The directory must be treated as
 * read-only. It is unpacked under a temp name and renamed into place whole, so a crash or a
 * racing process never leaves a half-unpacked cache entry (a racer's copy is dropped).
 * `dist gc` does not clean this cache; remove `<root>/build/rootfs` to reclaim it.
 */
export async function baseRootfs(store: Store, img: ImageDraft, platform: Platform, signal?: AbortSignal): Promise<string> {
  const cache = rootfsCacheDir(store);
  const chain = img.base ? draftChainId(img) : '';
  const dir = join(cache, chain ? chain.replace(':', '-') : 'empty');
  if (existsSync(dir)) return dir;
  mkdirSync(cache, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    mkdirSync(tmp, { mode: 0o755 });
    if (img.base) await unpack(store, img.base, tmp, { platform, signal });
    try {
      renameSync(tmp, dir);
    } catch (err) {
      if (sysCode(err) !== 'ENOTEMPTY' && sysCode(err) !== 'EEXIST') throw err;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

import type { Store } from '../content/store.js';
import { isIndex, type Descriptor } from './mediatypes.js';
import { readJsonBlob } from './walk.js';

/** Bytes of an image as stored: the manifest, config and layers (all present children of an index). */
export async function imageSize(store: Store, desc: Descriptor): Promise<number> {
  if (!(await store.has(desc.digest))) return desc.size;
  const doc = await readJsonBlob(store, desc.digest);
  if (isIndex(desc.mediaType) || Array.isArray(doc.manifests)) {
    let n = desc.size;
    for (const m of doc.manifests ?? []) if (await store.has(m.digest)) n += await imageSize(store, m);
    return n;
  }
  return desc.size + (doc.config?.size ?? 0) + (doc.layers ?? []).reduce((a: number, l: Descriptor) => a + l.size, 0);
}

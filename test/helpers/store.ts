import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Store } from '../../lib/content/store.js';

/** Lists what is under blobs/<alg>/ and ingest/, the things a failure must leave clean. */
export async function leftovers(root: string): Promise<{ blobs: string[]; ingest: string[] }> {
  const ls = async (dir: string) => {
    try {
      return (await readdir(dir)).sort();
    } catch {
      return [];
    }
  };
  const blobs: string[] = [];
  for (const alg of await ls(join(root, 'blobs'))) for (const hex of await ls(join(root, 'blobs', alg))) blobs.push(`${alg}:${hex}`);
  return { blobs, ingest: await ls(join(root, 'ingest')) };
}

export function storeAt(root: string): Store {
  return new Store(root);
}

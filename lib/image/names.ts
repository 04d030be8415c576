import { stat } from '../fsp.js';
import { withStoreLock } from '../content/lease.js';
import type { Store } from '../content/store.js';
import { writeFileAtomic } from '../fsp.js';
import { DistError } from '../errors.js';
import { manifestMediaType, REF_NAME, type Descriptor } from './mediatypes.js';
import { readIndex, readJsonBlob } from './walk.js';

/** An image name in index.json and the descriptor it points at. */
export interface NamedImage {
  name: string;
  descriptor: Descriptor;
}

const NAME = /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;

/** Checks a ref name against the OCI image-layout grammar. Errors: EINVAL. */
export function checkName(name: string): void {
  if (!NAME.test(name)) throw new DistError('EINVAL', `invalid image name ${JSON.stringify(name)}`);
}

/**
 * Read-modify-write of index.json under a cross-process lock, published atomically (temp
 * file and rename), so concurrent pulls never lose each other's names and readers (skopeo,
 * umoci) never see a half-written index.
 */
export async function updateIndex(store: Store, change: (manifests: Descriptor[]) => Descriptor[]): Promise<void> {
  await withStoreLock(store, 'index.json.lock', async () => {
    const index = await readIndex(store);
    index.manifests = change(index.manifests);
    await writeFileAtomic(store.indexPath, `${JSON.stringify(index)}\n`);
  });
}

/** Names (or renames) an image: any existing entry with the name is replaced. */
export async function setName(store: Store, name: string, descriptor: Descriptor): Promise<void> {
  checkName(name);
  const { mediaType, digest, size, platform } = descriptor;
  const entry: Descriptor = { mediaType, digest, size, ...(platform ? { platform } : {}), annotations: { [REF_NAME]: name } };
  await updateIndex(store, (ms) => [...ms.filter((m) => m.annotations?.[REF_NAME] !== name), entry]);
}

/** Removes names. Errors: ENOENT for a name that is not there (the others are still removed). */
export async function removeNames(store: Store, names: string[]): Promise<string[]> {
  const removed: string[] = [];
  await updateIndex(store, (ms) =>
    ms.filter((m) => {
      const n = m.annotations?.[REF_NAME];
      if (n !== undefined && names.includes(n)) {
        removed.push(n);
        return false;
      }
      return true;
    }),
  );
  return removed;
}

export async function listNames(store: Store): Promise<NamedImage[]> {
  const index = await readIndex(store);
  return index.manifests.filter((m) => m.annotations?.[REF_NAME]).map((m) => ({ name: m.annotations![REF_NAME]!, descriptor: m }));
}

/** Finds an image by name, or by manifest/index digest. Errors: ENOENT. */
export async function findImage(store: Store, nameOrDigest: string): Promise<NamedImage> {
  const names = await listNames(store);
  const hit = names.find((n) => n.name === nameOrDigest) ?? names.find((n) => n.descriptor.digest === nameOrDigest);
  if (hit) return hit;
  if (/^sha(256|512):/.test(nameOrDigest) && (await store.has(nameOrDigest))) {
    return { name: nameOrDigest, descriptor: await localDescriptor(store, nameOrDigest) };
  }
  throw new DistError('ENOENT', `no image named ${JSON.stringify(nameOrDigest)} in the store`, { hint: 'see dist images' });
}

/** The descriptor of a manifest or index held in the store (its media type read from it). */
export async function localDescriptor(store: Store, digest: string): Promise<Descriptor> {
  const doc = await readJsonBlob(store, digest);
  const { size } = await stat(store.blobPath(digest));
  return { mediaType: manifestMediaType(doc), digest, size };
}

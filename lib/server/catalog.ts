import { statSync } from 'node:fs';
import type { Store } from '../content/store.js';
import { isDistError } from '../errors.js';
import { isIndex, MAX_MANIFEST_BYTES, REF_NAME, type Descriptor } from '../image/mediatypes.js';
import { readIndex, readJsonBlob } from '../image/walk.js';
import { isRepositoryPath, isTag } from '../remote/locator.js';

/**
 * How a store name is served: `HOST/REPO:TAG` and `REPO:TAG` as repository REPO, tag TAG; a
 * bare `REPO` as tag `latest`. The first component is a host when it has a dot or a port or
 * is `localhost` (the rule of image references). Names that make no valid repository or tag
 * (a digest, capitals) are not served: undefined.
 */
export function servedAs(name: string): { repository: string; tag: string } | undefined {
  let rest = name;
  let tag = 'latest';
  if (rest.includes('@')) return undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) rest = rest.slice(slash + 1);
  return isRepositoryPath(rest) && isTag(tag) ? { repository: rest, tag } : undefined;
}

/** One served tag: the repository, the tag and its descriptor. */
interface Tagged {
  repository: string;
  tag: string;
  descriptor: Descriptor;
}

/**
 * The tags the store serves, from index.json, re-read only when the file changed (it is
 * replaced by rename on every change, so its inode and mtime tell). Many clients at once ask
 * for tags; parsing index.json per request would cost each of them.
 */
export class Catalog {
  private key = '';
  private tags: Tagged[] = [];
  private entries: Descriptor[] = [];

  constructor(private readonly store: Store) {}

  private async load(): Promise<void> {
    const st = statSync(this.store.indexPath, { throwIfNoEntry: false });
    const key = st ? `${st.ino}:${st.mtimeMs}:${st.size}` : '';
    if (key === this.key) return;
    const index = await readIndex(this.store);
    const tags: Tagged[] = [];
    for (const d of index.manifests) {
      const name = d.annotations?.[REF_NAME];
      const served = name !== undefined ? servedAs(name) : undefined;
      if (served) tags.push({ ...served, descriptor: d });
    }
    this.tags = tags;
    this.entries = index.manifests;
    this.key = key;
  }

  /** The descriptor a tag names; the last entry wins when two names serve the same tag. */
  async lookup(repository: string, tag: string): Promise<Descriptor | undefined> {
    await this.load();
    let hit: Descriptor | undefined;
    for (const t of this.tags) if (t.repository === repository && t.tag === tag) hit = t.descriptor;
    return hit;
  }

  /** A repository's tags, sorted, without repeats. */
  async tagsOf(repository: string): Promise<string[]> {
    await this.load();
    return [...new Set(this.tags.filter((t) => t.repository === repository).map((t) => t.tag))].sort();
  }

  /** Every served repository, sorted. */
  async repositories(): Promise<string[]> {
    await this.load();
    return [...new Set(this.tags.map((t) => t.repository))].sort();
  }

  /**
   * The manifests in the store whose `subject` is `digest`, as referrers-API descriptors: every
   * manifest reachable from index.json (named or not, and the children of indexes) is read.
   */
  async referrers(digest: string): Promise<Descriptor[]> {
    await this.load();
    const seen = new Set<string>();
    const out: Descriptor[] = [];
    const visit = async (desc: Descriptor): Promise<void> => {
      if (seen.has(desc.digest) || desc.size > MAX_MANIFEST_BYTES) return;
      seen.add(desc.digest);
      let doc: any;
      try {
        doc = await readJsonBlob(this.store, desc.digest);
      } catch (err) {
        if (isDistError(err)) return; // missing (a single-platform pull of an index) or not JSON
        throw err;
      }
      if (doc?.subject?.digest === digest) {
        const mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : desc.mediaType;
        const artifactType = doc.artifactType ?? (isIndex(mediaType) ? undefined : doc.config?.mediaType);
        out.push({ mediaType, digest: desc.digest, size: desc.size, ...(artifactType ? { artifactType } : {}), ...(doc.annotations ? { annotations: doc.annotations } : {}) });
      }
      if (Array.isArray(doc?.manifests)) for (const m of doc.manifests) if (typeof m?.digest === 'string') await visit(m);
    };
    for (const d of this.entries) await visit(d);
    return out.sort((a, b) => (a.digest < b.digest ? -1 : 1));
  }
}

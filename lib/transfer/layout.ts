import { parseImageRef, formatRef } from '../remote/locator.js';

/** The annotation containerd writes beside ref.name: the image's full, normalised name. */
export const CONTAINERD_NAME = 'io.containerd.image.name';

/**
 * The file a delta archive (`dist export --exclude-from`) carries: `{"excluded": [digests]}`,
 * the blobs the images need that were left out, so that import can say which are missing.
 * Other loaders ignore it, as they ignore any file they do not know.
 */
export const EXCLUDED_FILE = 'dist-excluded.json';

/** What the tar entries of an archive dist writes look like: fixed times, owners and modes. */
export const FIXED = { mtime: new Date(0), uid: 0, gid: 0, uname: '', gname: '' } as const;

/**
 * A name as docker normalises it: `alpine:latest` is `docker.io/library/alpine:latest`, a
 * name without tag or digest gains `:latest`. Undefined for text that is not a reference
 * (dist names may be any ref.name, such as `1` or `My_App`).
 */
export function normaliseName(name: string): string | undefined {
  try {
    return formatRef(parseImageRef(name));
  } catch {
    return undefined;
  }
}

/**
 * The RepoTags form docker writes in `manifest.json`: normalised, then shortened for Docker
 * Hub (`docker.io/library/alpine:latest` is `alpine:latest`). Digest references have no
 * tag form: undefined.
 */
export function repoTag(name: string): string | undefined {
  const full = normaliseName(name);
  if (!full || full.includes('@')) return undefined;
  return full.replace(/^docker\.io\/library\/(?=[^/]+$)/, '').replace(/^docker\.io\//, '');
}

/** `blobs/<alg>/<hex>`, the path of a blob in an OCI layout. */
export function blobPath(digest: string): string {
  const i = digest.indexOf(':');
  return `blobs/${digest.slice(0, i)}/${digest.slice(i + 1)}`;
}

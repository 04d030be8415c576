import { appendFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseDigest } from '../digest.js';
import { sysCode } from '../errors.js';
import { mkdirp } from '../fsp.js';
import type { Store } from '../content/store.js';

/**
 * Where each blob came from: the repositories (`host/repo`) it was pulled from or pushed to,
 * as containerd keeps `containerd.io/distribution.source.<host>=<repo>` labels. A push to
 * another repository of the same registry then mounts the blob instead of sending it.
 *
 * Kept beside the OCI layout, not in it: `<root>/sources/<alg>/<hex>`, one `host/repo` a line.
 * A line is appended with O_APPEND in one write, so concurrent pulls never lose each other's
 * lines (a repeated line is harmless). gc leaves stale files behind; they only cost a failed
 * mount attempt, which falls back to an upload.
 */
function sourcePath(store: Store, digest: string): string {
  const d = parseDigest(digest);
  return join(store.root, 'sources', d.algorithm, d.hex);
}

/** Records that `host/repository` holds each of `digests` (already recorded ones are skipped). */
export function recordSources(store: Store, host: string, repository: string, digests: Iterable<string>): void {
  const line = `${host}/${repository}`;
  // One directory per digest algorithm: made once, not once per blob.
  const made = new Set<string>();
  for (const digest of new Set(digests)) {
    if (sourcesOf(store, digest).includes(line)) continue;
    const path = sourcePath(store, digest);
    const dir = dirname(path);
    if (!made.has(dir)) {
      mkdirp(dir);
      made.add(dir);
    }
    appendFileSync(path, `${line}\n`);
  }
}

/** The `host/repo` entries recorded for a blob (none when nothing was recorded). */
function sourcesOf(store: Store, digest: string): string[] {
  try {
    return readFileSync(sourcePath(store, digest), 'utf8').split('\n').filter(Boolean);
  } catch (err) {
    if (sysCode(err) === 'ENOENT') return [];
    throw err;
  }
}

/** The repositories of `host` that hold the blob, the ones sharing the longest path prefix with `repository` first (containerd's order). */
export function mountSources(store: Store, digest: string, host: string, repository: string): string[] {
  const prefix = `${host}/`;
  const common = (r: string) => {
    const a = r.split('/');
    const b = repository.split('/');
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return i;
  };
  return sourcesOf(store, digest)
    .filter((s) => s.startsWith(prefix))
    .map((s) => s.slice(prefix.length))
    .filter((r) => r !== repository)
    .sort((x, y) => common(y) - common(x));
}

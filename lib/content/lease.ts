import { writeFileSync } from 'node:fs';
import { mkdirp, readdir, readFile, rm } from '../fsp.js';
import { join } from 'node:path';
import { sysCode } from '../errors.js';
import { acquire, isLockLive, takeLock, type Lock } from './lock.js';
import type { Store } from './store.js';

/**
 * A lease protects blobs from gc while a pull is between committing them and naming the
 * image in index.json. It is a file `leases/<id>` listing digests, guarded by a
 * lock (`leases/<id>.lock`, lib/content/lock.ts) so a crashed puller's lease goes stale and stops protecting.
 *
 * Ordering against gc: leases are written (and extended) only while holding the gc lock, and
 * gc lists blobs before reading leases, so any blob a live lease covers is seen as leased.
 * `end` takes no lock: the pull has named its image by then, and gc reads index.json only
 * after the leases (lib/image/gc.ts), so a lease it missed is one whose name it will see.
 */
export class Lease {
  private readonly digests = new Set<string>();
  private constructor(
    private readonly store: Store,
    readonly path: string,
    private readonly lock: Lock,
  ) {}

  // Lease files are a few hundred bytes: written synchronously, each costs microseconds where
  // a thread-pool round trip costs ~0.5 ms, twice before a pull's first blob request.
  static async create(store: Store): Promise<Lease> {
    const dir = join(store.root, 'leases');
    mkdirp(dir);
    const path = join(dir, `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
    // Locked before the file exists, so gc never takes the new lease for a dead one. A fresh
    // name: no one else can hold its lock.
    const lock = takeLock(`${path}.lock`)!;
    writeFileSync(path, '');
    return new Lease(store, path, lock);
  }

  /** Adds digests to the lease, waiting for any running gc to finish first. */
  async add(digests: string[]): Promise<void> {
    const fresh = digests.filter((d) => !this.digests.has(d));
    if (fresh.length === 0) return;
    for (const d of fresh) this.digests.add(d);
    await withGcLock(this.store, async () => writeFileSync(this.path, [...this.digests].join('\n')));
  }

  async end(): Promise<void> {
    try {
      this.lock.release();
    } catch {}
    await rm(this.path, { force: true });
  }
}

/** Digests held by live (non-stale) leases. Stale lease files are removed. */
export async function leasedDigests(store: Store): Promise<Set<string>> {
  const dir = join(store.root, 'leases');
  const out = new Set<string>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (sysCode(err) === 'ENOENT') return out;
    throw err;
  }
  for (const name of names) {
    if (name.endsWith('.lock')) continue;
    const path = join(dir, name);
    if (!isLockLive(`${path}.lock`)) {
      await rm(path, { force: true });
      await rm(`${path}.lock`, { recursive: true, force: true });
      continue;
    }
    const text = await readFile(path, 'utf8').catch(() => '');
    for (const d of text.split('\n')) if (d) out.add(d);
  }
  return out;
}

/** Runs `fn` holding the store's gc lock (one gc at a time; lease writes never interleave with one). */
export function withGcLock<T>(store: Store, fn: () => Promise<T>): Promise<T> {
  return withStoreLock(store, 'gc.lock', fn);
}

/** Runs `fn` holding a store-wide lock `<root>/<name>`, waiting for it as long as it is live. */
export async function withStoreLock<T>(store: Store, name: string, fn: () => Promise<T>): Promise<T> {
  const lock = (await acquire(store.root, { wait: true, name }))!;
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

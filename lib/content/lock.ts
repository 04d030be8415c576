import { mkdirSync } from 'node:fs';
import { stat } from '../fsp.js';
import { join } from 'node:path';
import type lockfileModule from 'proper-lockfile';
import { DistError, sysCode } from '../errors.js';
import { sleep } from '../sleep.js';

/**
 * A lock is a `lock/` directory made with mkdir(2) inside the directory it guards
 * (proper-lockfile). The holder touches it every UPDATE_MS; a lock whose mtime is older than
 * STALE_MS belongs to a crashed holder and is taken over. 5 s / 1 s: under 16 concurrent
 * 64 MiB ingests on 2 cores the holder's timer never slipped past 300 ms, and a kill -9'd
 * ingest blocks its ref for at most 5 s.
 */
const STALE_MS = 5000;
const UPDATE_MS = 1000;

let loaded: Promise<typeof lockfileModule> | undefined;
/**
 * proper-lockfile (with graceful-fs and signal-exit), loaded at the first lock: it cost every
 * start-up ~4.5 ms, `dist path` included, which never locks (profiled).
 */
export function properLockfile(): Promise<typeof lockfileModule> {
  return (loaded ??= import('proper-lockfile').then((m) => m.default));
}

export interface Lock {
  /** Releases the lock. Idempotent. */
  release(): Promise<void>;
  /** Set once the lock was found stolen or unrefreshable; the holder must stop writing. */
  readonly compromised: Error | undefined;
}

export interface AcquireOptions {
  /** Wait for a held lock (true) or fail at once with ELOCKED (false). */
  wait: boolean;
  signal?: AbortSignal;
  /**
   * Polled while waiting: return true to give up waiting because the work is already done
   * (for an ingest: the blob has appeared). acquire() then returns undefined.
   */
  done?: () => Promise<boolean>;
  /** Called once when the lock is found held, so the caller can tell the user. */
  onWait?: (since: Date) => void;
  /** The lock's name inside `dir` (default `lock`). */
  name?: string;
}

/**
 * Takes the lock guarding `dir`, creating `dir` when needed. Concurrency: any number of
 * processes may race; exactly one holds the lock at a time (barring the stale-takeover window
 * inherent to mtime-based locks, which can never make an unverified blob visible).
 * Errors: ELOCKED when `wait` is false and the lock is held; EINTR-like abort via `signal`.
 */
export async function acquire(dir: string, opts: AcquireOptions): Promise<Lock | undefined> {
  const lockfile = await properLockfile();
  let delay = 16;
  let told = false;
  for (let attempt = 0; ; attempt++) {
    opts.signal?.throwIfAborted();
    // The caller checked before calling; re-check only while waiting.
    if (attempt > 0 && opts.done && (await opts.done())) return undefined;
    let compromised: Error | undefined;
    try {
      // Inside the try: a committer may remove this directory between mkdir's EEXIST and its
      // own check that the path is a directory, which surfaces as ENOENT; that is a retry.
      mkdirSync(dir, { recursive: true });
      // The sync API: taking and dropping a lock is a few small metadata calls, and through the
      // thread pool they cost a 40-layer pull ~0.5 ms per blob (profiled). Its refresh timer
      // still runs while the holder streams.
      const release = lockfile.lockSync(dir, {
        lockfilePath: join(dir, opts.name ?? 'lock'),
        realpath: false,
        stale: STALE_MS,
        update: UPDATE_MS,
        retries: 0,
        onCompromised: (err) => {
          compromised = err;
        },
      });
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          try {
            release();
          } catch (err) {
            // Already gone (compromised or removed with its directory): nothing to release.
            if (!['ERELEASED', 'ENOENT', 'ECOMPROMISED'].includes(sysCode(err) ?? '')) throw err;
          }
        },
        get compromised() {
          return compromised;
        },
      };
    } catch (err) {
      const code = sysCode(err);
      // ENOENT: a committer removed the ingest directory between our mkdir and the lock.
      if (code !== 'ELOCKED' && code !== 'ENOENT') throw err;
      if (code === 'ELOCKED') {
        if (!opts.wait) {
          throw new DistError('ELOCKED', `${dir} is locked by another process`, { hint: 'retry later' });
        }
        if (!told && opts.onWait) {
          told = true;
          opts.onWait(await lockSince(join(dir, opts.name ?? 'lock')));
        }
      }
    }
    // Own backoff rather than proper-lockfile's `retries`: its retry schedule is precomputed
    // per call, which for long waits cost ~1 ms per lock in profiles of many-layer pulls.
    await sleep(delay + Math.random() * delay, opts.signal);
    delay = Math.min(delay * 2, 250);
  }
}

async function lockSince(lockPath: string): Promise<Date> {
  try {
    return (await stat(lockPath)).birthtime;
  } catch {
    return new Date();
  }
}

import { mkdirSync, rmdirSync, statSync, utimesSync } from 'node:fs';
import { mkdirp, stat } from '../fsp.js';
import { join } from 'node:path';
import { DistError, sysCode } from '../errors.js';
import { sleep } from '../sleep.js';

/**
 * A lock is a directory made with mkdir(2): atomic, and it works on any local file system.
 * The holder touches its mtime every UPDATE_MS; a lock whose mtime is older than STALE_MS
 * belongs to a crashed holder and is removed and taken over. This is proper-lockfile's
 * protocol, which dist used until it measured that library's load (with graceful-fs, which
 * also loads node:fs/promises, and signal-exit) at ~4.5 ms of every ingest and pull; the
 * protocol is unchanged, so older dist processes and this one still exclude each other.
 * 5 s / 1 s: under 16 concurrent 64 MiB ingests on 2 cores the holder's timer never slipped
 * past 300 ms, and a kill -9'd ingest blocks its ref for at most 5 s.
 */
const STALE_MS = 5000;
const UPDATE_MS = 1000;

/** A lock this process holds on `path` (a directory). */
export interface Lock {
  /** Stops refreshing and removes the lock (unless it was lost). Idempotent. */
  release(): void;
  /** Set once the lock was found taken over, removed or unrefreshed past STALE_MS. */
  readonly compromised: Error | undefined;
}

/** True when `path` is a lock whose holder is alive (refreshed within STALE_MS). */
export function isLockLive(path: string): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs <= STALE_MS;
  } catch (err) {
    if (sysCode(err) === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Takes the lock `path`, or returns undefined when a live holder has it. A stale lock is
 * removed and taken. Synchronous: a few metadata calls, cheaper than thread-pool round trips
 * (profiled: ~0.5 ms per blob of a 40-layer pull). The refresh timer does not hold the
 * process open. Errors: those of mkdir(2) other than EEXIST (EACCES, ENOENT for a missing
 * parent, ...).
 */
export function takeLock(path: string): Lock | undefined {
  if (!mkdirOrExists(path)) {
    let since: number;
    try {
      since = statSync(path).mtimeMs;
    } catch (err) {
      if (sysCode(err) !== 'ENOENT') throw err;
      since = -Infinity; // released meanwhile
    }
    if (Date.now() - since <= STALE_MS) return undefined;
    try {
      rmdirSync(path);
    } catch (err) {
      if (sysCode(err) !== 'ENOENT') throw err;
    }
    // Another process may take it first: then it is live, and ours to wait for.
    if (!mkdirOrExists(path)) return undefined;
  }
  let mtime = statSync(path).mtimeMs;
  let touched = Date.now();
  let compromised: Error | undefined;
  let released = false;
  const lose = (why: string) => {
    compromised = new DistError('ELOCKED', `lock ${path} lost: ${why}`);
    clearInterval(timer);
  };
  const timer = setInterval(() => {
    try {
      if (Date.now() - touched > STALE_MS) return lose(`not refreshed for ${Date.now() - touched} ms`);
      if (statSync(path).mtimeMs !== mtime) return lose('another process took it over');
      const now = new Date();
      utimesSync(path, now, now);
      mtime = statSync(path).mtimeMs;
      touched = now.getTime();
    } catch (err) {
      lose(sysCode(err) === 'ENOENT' ? 'it was removed' : (err as Error).message);
    }
  }, UPDATE_MS);
  timer.unref();
  return {
    release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      if (compromised) return; // not ours any more
      try {
        rmdirSync(path);
      } catch (err) {
        if (sysCode(err) !== 'ENOENT') throw err;
      }
    },
    get compromised() {
      return compromised;
    },
  };
}

function mkdirOrExists(path: string): boolean {
  try {
    mkdirSync(path);
    return true;
  } catch (err) {
    if (sysCode(err) === 'EEXIST') return false;
    throw err;
  }
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
  const path = join(dir, opts.name ?? 'lock');
  let delay = 16;
  let told = false;
  for (let attempt = 0; ; attempt++) {
    opts.signal?.throwIfAborted();
    // The caller checked before calling; re-check only while waiting.
    if (attempt > 0 && opts.done && (await opts.done())) return undefined;
    try {
      // Inside the try: a committer may remove this directory between our mkdir of it and
      // of the lock in it, which surfaces as ENOENT; that is a retry.
      mkdirp(dir);
      const held = takeLock(path);
      if (held) return held;
    } catch (err) {
      if (sysCode(err) !== 'ENOENT') throw err;
    }
    if (!opts.wait) throw new DistError('ELOCKED', `${dir} is locked by another process`, { hint: 'retry later' });
    if (!told && opts.onWait) {
      told = true;
      opts.onWait(await lockSince(path));
    }
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

import { spawn } from 'node:child_process';
import { closeSync, copyFileSync, createReadStream, mkdirSync, openSync, readSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { applyLayer } from '../archive/apply.js';
import { writeTree } from '../archive/diff.js';
import { cleanComponents } from '../archive/paths.js';
import type { Store } from '../content/store.js';
import { DistError, isDistError } from '../errors.js';
import type { Platform } from '../image/mediatypes.js';
import { findImage, listNames, localDescriptor, setName } from '../image/names.js';
import { cacheLookup, cacheStore, stepKey } from './cache.js';
import { baseDraft, commitOnto, createdAt } from './commit.js';
import { baseRootfs } from './rootfs.js';
import { runStep } from './runc.js';
import { buildOrder, type BuildSpec, type Target } from './spec.js';

export interface BuildOptions {
  platform: Platform;
  /** Clamps layer times and sets `created`; also dates the `<target>-<date>_<n>` names. */
  sourceDateEpoch?: number;
  signal?: AbortSignal;
  /** The environment pre/post hooks run with (plus ROOTFS). */
  env?: Record<string, string | undefined>;
  /** Progress: a target starts, is reused from the cache, or is built. */
  onTarget?: (e: { target: string; event: 'start' | 'cached' | 'built'; digest?: string }) => void;
  /** Output of run/install steps and pre/post hooks. */
  onOutput?: (target: string, chunk: Buffer) => void;
}

export interface Built {
  target: string;
  digest: string;
  names: string[];
  cached: boolean;
}

/**
 * Builds the targets of a genoci-style spec (all, or `wanted` and what they are based on), in
 * dependency order, into the store: one layer per target, named `<target>` and
 * `<target>-<YYYY-MM-DD>_<n>`. A target whose inputs are unchanged reuses what it built before
 * (lib/build/cache.ts).
 *
 * Each target starts from a copy of its base's root filesystem; its actions run in this
 * order: `pre` (host), `expand`, `copy`, `install`, `run`, `post` (host); then the diff against
 * the base becomes the layer, and entrypoint/cmd/env/workdir/user/labels go into the config.
 * `run` and `install` execute under runc (lib/build/runc.ts); `expand` and `copy` go through
 * apply's rules, so nothing lands outside the rootfs.
 *
 * Errors: EINVAL naming the target and key (a missing base, a failing step), and those of
 * commit. Targets built before a failure stay built and named.
 */
export async function build(store: Store, spec: BuildSpec, wanted: string[], opts: BuildOptions): Promise<Built[]> {
  const order = buildOrder(spec, wanted);
  const built = new Map<string, string>();
  const results: Built[] = [];
  const date = createdAt(opts.sourceDateEpoch).slice(0, 10);
  for (const t of order) {
    opts.signal?.throwIfAborted();
    opts.onTarget?.({ target: t.name, event: 'start' });
    const fail = (key: string, why: string) => new DistError('EINVAL', `${spec.path}: target ${JSON.stringify(t.name)}: ${key}: ${why}`);
    const base = await baseDigest(store, t, built, fail);
    const key = await stepKey(t, base, { platform: opts.platform, sourceDateEpoch: opts.sourceDateEpoch ?? null }, opts.signal);
    let digest = await cacheLookup(store, key);
    const cached = digest !== undefined;
    if (!digest) {
      digest = await buildTarget(store, spec, t, base, opts, fail);
      await cacheStore(store, key, digest);
    }
    const names = [t.name, await datedName(store, t.name, date)];
    const desc = await localDescriptor(store, digest);
    desc.platform = { architecture: opts.platform.architecture, os: opts.platform.os, ...(opts.platform.variant ? { variant: opts.platform.variant } : {}) };
    for (const n of names) await setName(store, n, desc);
    built.set(t.name, digest);
    results.push({ target: t.name, digest, names, cached });
    opts.onTarget?.({ target: t.name, event: cached ? 'cached' : 'built', digest });
  }
  return results;
}

/** The base's manifest digest: `empty`, a target built in this run, or an image in the store. */
async function baseDigest(store: Store, t: Target, built: Map<string, string>, fail: (k: string, w: string) => Error): Promise<string> {
  if (t.base === 'empty') return 'empty';
  const own = built.get(t.base);
  if (own) return own;
  try {
    return (await findImage(store, t.base)).descriptor.digest;
  } catch (err) {
    if (isDistError(err, 'ENOENT')) throw fail('base', `no target or image named ${JSON.stringify(t.base)} (see dist images)`);
    throw err;
  }
}

/** `<target>-<date>_<n>`, n one more than the highest such name in the store. */
async function datedName(store: Store, target: string, date: string): Promise<string> {
  const prefix = `${target}-${date}_`;
  let n = 0;
  for (const { name } of await listNames(store)) {
    if (name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length))) n = Math.max(n, Number(name.slice(prefix.length)));
  }
  return `${prefix}${n + 1}`;
}

async function buildTarget(store: Store, spec: BuildSpec, t: Target, base: string, opts: BuildOptions, fail: (k: string, w: string) => Error): Promise<string> {
  const img = await baseDraft(store, base, opts.platform, createdAt(opts.sourceDateEpoch));
  const lower = await baseRootfs(store, img, opts.platform, opts.signal);
  const workRoot = join(store.root, 'build', 'work');
  mkdirSync(workRoot, { recursive: true });
  const work = join(workRoot, `${t.name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  const output = (c: Buffer) => opts.onOutput?.(t.name, c);
  const step = async (key: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw fail(key, err instanceof Error ? err.message : String(err));
    }
  };
  try {
    // A copy of the base (hardlinks kept, reflinked where the file system can).
    await step('base', () => {
      mkdirSync(work);
      return host(`cp -a --reflink=auto ${q(lower)}/. ${q(work)}/`, dirname(spec.path), { PATH: opts.env?.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' }, output, opts.signal);
    });
    if (t.pre) await step('pre', () => host(t.pre!, dirname(spec.path), { ...opts.env, ROOTFS: work }, output, opts.signal));
    if (t.expand) await step('expand', async () => void (await applyLayer(work, await openTarball(t.expand!), { signal: opts.signal })));
    for (const c of t.copy) {
      await step('copy', async () => {
        const dest = cleanComponents(c.dest.endsWith('/') ? `${c.dest}${basename(c.src)}` : c.dest);
        if (dest.length === 0) throw new Error(`${c.dest}: the destination cannot be the root itself`);
        const pipe = new PassThrough({ highWaterMark: 1 << 20 });
        const written = writeTree(c.src, dest.join('/'), pipe, { signal: opts.signal });
        const [w, a] = await Promise.allSettled([written, applyLayer(work, pipe, { signal: opts.signal })]);
        if (w.status === 'rejected') throw w.reason;
        if (a.status === 'rejected') throw a.reason;
      });
    }
    if (t.install.length) {
      await step('install', async () => {
        const dir = `tmp/dist-install-${process.pid}`;
        mkdirSync(join(work, dir), { recursive: true });
        try {
          const files = t.install.map((deb, i) => {
            const name = `${i}-${basename(deb)}`;
            copyFileSync(deb, join(work, dir, name));
            return `/${dir}/${name}`;
          });
          await runStep({ rootfs: work, script: `dpkg -i ${files.map(q).join(' ')}`, network: t.network, signal: opts.signal, onOutput: output });
        } finally {
          rmSync(join(work, dir), { recursive: true, force: true });
        }
      });
    }
    if (t.run) await step('run', () => runStep({ rootfs: work, script: t.run!, network: t.network, signal: opts.signal, onOutput: output }));
    if (t.post) await step('post', () => host(t.post!, dirname(spec.path), { ...opts.env, ROOTFS: work }, output, opts.signal));
    const actions = ['expand', 'copy', 'install', 'run'].filter((a) => (a === 'copy' ? t.copy.length : a === 'install' ? t.install.length : (t as any)[a]));
    // Dated now, after the steps, as commit() would date it.
    const r = await commitOnto(store, img, lower, work, createdAt(opts.sourceDateEpoch), {
      names: [],
      createdBy: `dist build${actions.length ? `: ${actions.join(', ')}` : ''}`,
      config: t.config,
      sourceDateEpoch: opts.sourceDateEpoch,
      signal: opts.signal,
    });
    return r.descriptor.digest;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs a host command (a pre/post hook, or the base copy) with `sh -c`. */
function host(cmd: string, cwd: string, env: Record<string, string | undefined>, onOutput: (c: Buffer) => void, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', cmd], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], signal });
    let last = '';
    const take = (c: Buffer) => {
      last = c.toString().trim().split('\n').pop() || last;
      onOutput(c);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`exited with status ${code}${last ? `: ${last}` : ''}`))));
  });
}

/**
 * A tarball's tar stream, whatever its compression: gzip and zstd are apply's own; xz and
 * bzip2 are decompressed by the system's tools.
 */
async function openTarball(path: string): Promise<Readable> {
  const head = Buffer.alloc(6);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, 6, 0);
  } finally {
    closeSync(fd);
  }
  const tool = head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) ? 'xz' : head.subarray(0, 3).toString('latin1') === 'BZh' ? 'bzip2' : undefined;
  if (!tool) return createReadStream(path, { highWaterMark: 1 << 20 });
  const child = spawn(tool, ['-dc', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const errs: Buffer[] = [];
  child.stderr.on('data', (c: Buffer) => errs.push(c));
  child.on('close', (code) => {
    if (code !== 0) child.stdout.destroy(new DistError('EINVAL', `${tool}: ${Buffer.concat(errs).toString().trim() || `exit status ${code}`}`));
  });
  return child.stdout;
}

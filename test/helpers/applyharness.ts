import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer, type ApplyResult } from '../../lib/archive/apply.js';
import { resolveInRoot } from '../../lib/archive/paths.js';
import { makeTar, type TarEntry } from './tarfixture.js';
import { tempDir } from './tmp.js';

/** A snapshot of everything under `dir` except `skip`: path -> type/mode/content. */
export function snapshot(dir: string, skip: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const r = rel ? `${rel}/${n}` : n;
      if (p === skip) continue;
      const st = lstatSync(p);
      if (st.isDirectory()) {
        out[r] = `dir ${st.mode.toString(8)}`;
        walk(p, r);
      } else if (st.isSymbolicLink()) out[r] = `link ${readlinkSync(p)}`;
      else out[r] = `file ${st.mode.toString(8)} ${st.nlink} ${readFileSync(p).toString('base64')}`;
    }
  };
  walk(dir, '');
  return out;
}

export interface Applied {
  tmp: string;
  root: string;
  result?: ApplyResult;
  error?: any;
  warnings: string[];
}

/** Host paths the breakout fixtures aim at; none may exist after any apply. */
export const HOST_TARGETS = ['/etc/unbroken', '/etc/emptied', '/etc/localpasswd', '/localetc', '/sketchylink', '/dummy'];

/**
 * Applies a tar to `<tmp>/root`, beside a canary directory, and asserts that nothing outside
 * the root changed: neither the canary nor the host paths the attacks aim at.
 */
export async function applyTar(
  t: any,
  entries: TarEntry[] | Buffer | ((tmp: string) => TarEntry[] | Buffer),
  pre?: (root: string, tmp: string) => void,
): Promise<Applied> {
  const tmp = await tempDir(t, 'dist-apply-');
  const root = join(tmp, 'root');
  mkdirSync(root);
  mkdirSync(join(tmp, 'canary', 'etc'), { recursive: true });
  writeFileSync(join(tmp, 'canary', 'etc', 'passwd'), 'canary\n');
  pre?.(root, tmp);
  const before = snapshot(tmp, root);
  const hostBefore = HOST_TARGETS.filter((p) => existsSync(p));
  const warnings: string[] = [];
  const given = typeof entries === 'function' ? entries(tmp) : entries;
  const tar = Buffer.isBuffer(given) ? given : makeTar(given);
  let result: ApplyResult | undefined;
  let error: unknown;
  try {
    result = await applyLayer(root, Readable.from([tar]), { onWarning: (w) => warnings.push(w) });
  } catch (err) {
    error = err;
  }
  assert.deepEqual(snapshot(tmp, root), before, 'nothing outside the root changed');
  assert.deepEqual(HOST_TARGETS.filter((p) => existsSync(p)), hostBefore, 'no host path was created');
  return { tmp, root, result, error, warnings };
}

/** Resolves a path in the root (as containerd's RootPath does) and stats it. */
export function statInRoot(root: string, path: string) {
  const comps = path.split('/').filter(Boolean);
  const resolved = resolveInRoot(root, comps);
  return statSync(join(root, ...resolved));
}

export function sameFile(root: string, a: string, b: string): boolean {
  const x = statInRoot(root, a);
  const y = statInRoot(root, b);
  return x.ino === y.ino && x.dev === y.dev;
}

export function ok(a: Applied): Applied {
  assert.equal(a.error, undefined, `apply failed: ${a.error?.message}`);
  return a;
}

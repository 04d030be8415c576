#!/usr/bin/env node
// bin/dist. Loads the bundle (out/bundle/main.cjs) with V8's code cache for it, built by
// scripts/code-cache.mjs at build time, then runs the command.
//
// Start-up is most of what a short dist command costs, and the seed's pipelines run one or
// two dist processes per layer under `xargs -P`. Compiling the bundle's functions again in
// every process cost ~45 ms of a `dist fetch` (measured); with the cache V8 deserializes
// them instead. A cache V8 rejects (another Node version, a rebuilt bundle) only costs that
// time back: the code runs the same.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Script } from 'node:vm';

// undici parses HTTP in wasm. V8 tiers hot wasm up to TurboFan on background threads, and
// Node waits for those jobs at exit: +130 ms on every short dist fetch (measured: 363 ms ->
// 234 ms for a manifest; a 64 MiB blob 481 ms -> 503 ms, within noise). dist runs once per
// layer under xargs, so stay on the baseline tier. Set before anything compiles: the flag is
// part of what V8 checks a code cache against, so the cache is built with it set too.
setFlagsFromString('--liftoff-only');

export const BUNDLE = join(__dirname, 'main.cjs');
export const CACHE = `${BUNDLE}.cache`;

export interface Bundle {
  main: typeof import('./main.js').main;
  start: (argv: string[]) => void;
}

/** Compiles and runs the bundle as a CommonJS module, with the code cache when given one. */
export function load(cachedData?: Buffer): { script: Script; bundle: Bundle } {
  const source = readFileSync(BUNDLE, 'utf8');
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
  const script = new Script(wrapped, { filename: BUNDLE, cachedData });
  const mod = { exports: {} as Bundle };
  script.runInThisContext()(mod.exports, require, mod, BUNDLE, __dirname);
  return { script, bundle: mod.exports };
}

function readCache(): Buffer | undefined {
  try {
    return readFileSync(CACHE);
  } catch {
    return undefined;
  }
}

if (require.main === module) load(readCache()).bundle.start(process.argv.slice(2));

#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS DIST_NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS} node
// bin/dist. Loads the bundle (out/bundle/main.cjs) with V8's code cache for it, built by
// scripts/code-cache.mjs at build time, then runs the command.
//
// Start-up is most of what a short dist command costs, and the seed's pipelines run one or
// two dist processes per layer under `xargs -P`. Compiling the bundle's functions again in
// every process cost ~45 ms of a `dist fetch` (measured); with the cache V8 deserializes
// them instead. A cache V8 rejects (another Node version, a rebuilt bundle) only costs that
// time back: the code runs the same.
//
// The #! line moves NODE_EXTRA_CA_CERTS out of node's way (GNU env -S expands ${...}; an
// unset variable becomes empty). With it set, node parses every certificate in the file
// before running any code: ~75 ms of each start-up with Debian's 140-certificate bundle
// (measured: `node -e 0` 115 ms -> 38 ms), though only a TLS connection uses them. The
// registry client loads the same file at its first TLS connection instead (lib/remote/
// connect.ts), and the variable is put back for child processes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Script } from 'node:vm';

export const BUNDLE = join(__dirname, 'main.cjs');
export const CACHE = `${BUNDLE}.cache`;

export interface Bundle {
  main: typeof import('./main.js').main;
  start: typeof import('./bin.js').start;
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

/** NODE_EXTRA_CA_CERTS as the #! line saved it, restored in the environment. */
function takeExtraCaFile(): string | undefined {
  const saved = process.env.DIST_NODE_EXTRA_CA_CERTS;
  if (saved === undefined) return undefined;
  delete process.env.DIST_NODE_EXTRA_CA_CERTS;
  if (!saved) return undefined;
  process.env.NODE_EXTRA_CA_CERTS = saved;
  return saved;
}

const extraCaFile = takeExtraCaFile();

if (require.main === module) load(readCache()).bundle.start(process.argv.slice(2), { extraCaFile });

// The launcher: bin/dist requires this file and calls run(). It loads the bundle
// (out/bundle/main.cjs, and undici.cjs when needed) with V8's code cache for each, built by
// scripts/code-cache.mjs at build time, then runs the command.
//
// Start-up is most of what a short dist command costs, and the xargs pipelines of containerd's original dist run one or
// two dist processes per layer under `xargs -P`. Compiling the bundle's functions again in
// every process cost ~45 ms of a `dist fetch` (measured); with the cache V8 deserializes
// them instead. A cache V8 rejects (another Node version, a rebuilt bundle) only costs that
// time back: the code runs the same.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Script } from 'node:vm';

/**
 * The bundle's parts, each a CommonJS script with its own code cache (`<part>.cjs.cache`):
 * `main` (everything of dist's own), and `undici`, which main requires as `dist:bundle/undici`
 * at the first registry request (lib/remote/transport.ts). The store commands (path, ingest,
 * list, apply...) then neither read nor deserialize undici: over half the code and of the cache.
 */
export const PARTS = ['main', 'undici'] as const;
export type Part = (typeof PARTS)[number];
export const partFile = (part: Part) => join(__dirname, `${part}.cjs`);
export const cacheFile = (part: Part) => `${partFile(part)}.cache`;

export interface Bundle {
  main: typeof import('./main.js').main;
  start: typeof import('./bin.js').start;
}

const loaded = new Map<Part, { script: Script; exports: unknown }>();
let useCache = true;

/** What the parts see as `require`: the real one, plus the other parts by name. */
const partRequire = (id: string): unknown => (id.startsWith('dist:bundle/') ? loadPart(id.slice('dist:bundle/'.length) as Part) : require(id));

/**
 * A part's exports, evaluated once, from its code cache when V8 accepts it. Exported for the
 * bench's undici floors (scripts/bench/undici-part.cjs), which load undici as dist does.
 */
export function loadPart(part: Part): unknown {
  let p = loaded.get(part);
  if (!p) {
    if (!PARTS.includes(part)) throw new Error(`dist: no bundle part ${part}`);
    const file = partFile(part);
    const source = readFileSync(file, 'utf8');
    // __distFileUrl is what the parts see as import.meta.url (scripts/build.mjs).
    const wrapped = `(function (exports, require, module, __filename, __dirname, __distFileUrl) {${source}\n})`;
    const script = new Script(wrapped, { filename: file, cachedData: useCache ? readCache(part) : undefined });
    const mod = { exports: {} };
    const url = `file://${file.split('/').map(encodeURIComponent).join('/')}`;
    script.runInThisContext()(mod.exports, partRequire, mod, file, __dirname, url);
    p = { script, exports: mod.exports };
    loaded.set(part, p);
  }
  return p.exports;
}

/**
 * Loads the main part and returns it, with the scripts of every part loaded so far (the
 * code-cache build serializes them after its commands ran). `cache: false` compiles from
 * source alone.
 */
export function load(opts: { cache?: boolean } = {}): { bundle: Bundle; scripts: () => Map<Part, Script>; loadPart: (part: Part) => unknown } {
  useCache = opts.cache !== false;
  const bundle = loadPart('main') as Bundle;
  return { bundle, scripts: () => new Map([...loaded].map(([k, v]) => [k, v.script])), loadPart };
}

function readCache(part: Part): Buffer | undefined {
  try {
    return readFileSync(cacheFile(part));
  } catch {
    return undefined;
  }
}

/** NODE_EXTRA_CA_CERTS as bin/dist saved it, restored in the environment. */
function takeExtraCaFile(): string | undefined {
  const saved = process.env.DIST_NODE_EXTRA_CA_CERTS;
  if (saved === undefined) return undefined;
  delete process.env.DIST_NODE_EXTRA_CA_CERTS;
  if (!saved) return undefined;
  process.env.NODE_EXTRA_CA_CERTS = saved;
  return saved;
}

/** Runs dist with the process's arguments (bin/dist calls this). */
export function run(): void {
  const extraCaFile = takeExtraCaFile();
  load().bundle.start(process.argv.slice(2), { extraCaFile });
}

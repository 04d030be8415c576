// Builds dist: bin/dist (a launcher, and a bundle in two parts with their code caches), plus a
// per-file transpile of cmd/, lib/ and test/ into out/ for the test runner. Type checking is `make check` (tsc --noEmit).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const here = new URL('..', import.meta.url).pathname;
process.chdir(here);

function tsFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** What the two bundle parts share: single CommonJS files for Node 20. */
const PART = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // DIST_BUILD_PLAIN=1 keeps names readable, for --cpu-prof.
  minify: process.env.DIST_BUILD_PLAIN !== '1',
  // import.meta.url (createRequire in lib/, and yargs, which passes it to fileURLToPath) must be
  // the part's file URL. esbuild's define takes only names: the launcher passes this one in.
  define: { 'import.meta.url': '__distFileUrl' },
  logLevel: 'warning',
};

rmSync('out', { recursive: true, force: true });

// bin/dist is a small launcher (cmd/launcher.cts) that loads a CommonJS bundle in two parts,
// each with V8's code cache for it: main.cjs (dist's own code) and undici.cjs (undici's public
// entry point, loaded at the first registry request). No ESM loader: Node's ESM loader and per-chunk
// compiles cost start-up in every process, and each command still evaluates only its own
// modules, since esbuild keeps dynamically imported modules lazy.
await build({
  ...PART,
  entryPoints: ['cmd/bin.ts'],
  outfile: 'out/bundle/main.cjs',
  sourcemap: 'linked',
  // Loaded from node_modules at run time: lib/archive/tar.ts patches its PAX decoder, and the
  // patch must reach the very module instance the extractor uses (tests use the same one).
  external: ['tar-stream'],
  plugins: [undiciAsPart()],
});
// undici, the bundle's second part: main requires it at the first registry request (see
// cmd/launcher.cts), so commands that never connect do not load it.
await build({
  ...PART,
  stdin: { contents: `module.exports = require('undici');`, resolveDir: here, sourcefile: 'undici-part.js' },
  outfile: 'out/bundle/undici.cjs',
});
await build({
  entryPoints: ['cmd/launcher.cts'],
  outfile: 'out/bundle/dist.cjs',
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});

// Per-file ESM for the tests (they import lib/ and cmd/ directly).
await build({
  entryPoints: [...tsFiles('cmd'), ...tsFiles('lib'), ...tsFiles('test')],
  outdir: 'out',
  outbase: '.',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'inline',
  logLevel: 'warning',
});

// Last, with the test helpers transpiled: it serves a test image to train the cache.
execFileSync(process.execPath, ['scripts/code-cache.mjs'], { stdio: 'inherit' });

/** In main, `undici` is the undici part; only its public entry point may be imported. */
function undiciAsPart() {
  return {
    name: 'undici-as-part',
    setup(b) {
      b.onResolve({ filter: /^undici(\/|$)/ }, (args) =>
        args.path === 'undici' ? { path: args.path, namespace: 'undici-part' } : { errors: [{ text: `${args.path}: import undici's public entry point, 'undici'` }] },
      );
      b.onResolve({ filter: /^dist:bundle\// }, (args) => ({ path: args.path, external: true }));
      b.onLoad({ filter: /.*/, namespace: 'undici-part' }, () => ({ contents: `module.exports = require('dist:bundle/undici');`, loader: 'js' }));
    },
  };
}

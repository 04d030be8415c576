// Builds dist: bin/dist (a launcher, one bundle and its code cache), plus a per-file transpile of cmd/, lib/
// and test/ into out/ for the test runner. Type checking is `make check` (tsc --noEmit).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, readdirSync, statSync, rmSync } from 'node:fs';
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

rmSync('out', { recursive: true, force: true });

// bin/dist is a small launcher (cmd/launcher.cts) that loads one CommonJS bundle of everything
// with V8's code cache for it. One file, no ESM loader: Node's ESM loader and per-chunk
// compiles cost start-up in every process, and each command still evaluates only its own
// modules, since esbuild keeps dynamically imported modules lazy.
await build({
  entryPoints: ['cmd/bin.ts'],
  outfile: 'out/bundle/main.cjs',
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // DIST_BUILD_PLAIN=1 keeps names readable, for --cpu-prof.
  minify: process.env.DIST_BUILD_PLAIN !== '1',
  sourcemap: 'linked',
  // createRequire(import.meta.url) in lib/ works as createRequire(__filename) in CommonJS.
  define: { 'import.meta.url': '__filename' },
  // Loaded from node_modules at run time: lib/archive/tar.ts patches its PAX decoder, and the
  // patch must reach the very module instance the extractor uses (tests use the same one).
  external: ['tar-stream'],
  plugins: [undiciWithoutHttp2()],
  logLevel: 'warning',
});
await build({
  entryPoints: ['cmd/launcher.cts'],
  outfile: 'out/bundle/dist.cjs',
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
chmodSync('out/bundle/dist.cjs', 0o755);

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

/** undici's node:http2 is replaced by lib/shims/undici-http2.ts (why: see there). */
function undiciWithoutHttp2() {
  return {
    name: 'undici-without-http2',
    setup(b) {
      b.onResolve({ filter: /^node:http2$/ }, (args) =>
        args.importer.includes('/node_modules/undici/') ? { path: join(here, 'lib', 'shims', 'undici-http2.ts') } : undefined,
      );
    },
  };
}

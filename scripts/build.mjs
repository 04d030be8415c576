// Builds dist: one start-up-lean bundle for bin/dist, plus a per-file transpile of cmd/, lib/
// and test/ into out/ for the test runner. Type checking is `make check` (tsc --noEmit).
import { build } from 'esbuild';
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

rmSync('out', { recursive: true, force: true });

// Code splitting keeps what each command lazily imports (yargs, undici, tar-stream) out of the
// entry chunk, so `dist path` loads only what it runs.
await build({
  entryPoints: { dist: 'cmd/bin.ts' },
  outdir: 'out/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  sourcemap: 'linked',
  chunkNames: 'chunks/[name]-[hash]',
  // Loaded from node_modules at run time: lib/archive/tar.ts patches its PAX decoder, and the
  // patch must reach the very module instance the extractor uses (tests use the same one).
  external: ['tar-stream'],
  // CommonJS dependencies (proper-lockfile) call require() on node builtins.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'warning',
});

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

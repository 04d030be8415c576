// undici's public entry point loaded as dist loads it: the bundle part out/bundle/undici.cjs
// with its V8 code cache (cmd/launcher.cts), so that an undici floor pays what dist pays to
// load undici and no more. For the bench's floors (fetch-undici.cjs, pull-undici.cjs).
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const { Script } = require('node:vm');
const { setFlagsFromString } = require('node:v8');

const file = join(__dirname, '..', '..', 'out', 'bundle', 'undici.cjs');
const source = readFileSync(file, 'utf8');
// The wrapper is the launcher's, byte for byte: V8 checks the cache against the source.
const script = new Script(`(function (exports, require, module, __filename, __dirname, __distFileUrl) {${source}\n})`, {
  filename: file,
  cachedData: readFileSync(`${file}.cache`),
});
if (script.cachedDataRejected) throw new Error(`${file}.cache: rejected by V8 (rebuild dist)`);
const mod = { exports: {} };
script.runInThisContext()(mod.exports, require, mod, file, __dirname);
// As dist does (lib/remote/transport.ts): wasm stays on V8's baseline tier, or Node waits for
// TurboFan jobs at exit.
setFlagsFromString('--liftoff-only');
module.exports = mod.exports;

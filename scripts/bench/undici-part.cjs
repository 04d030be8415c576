// undici's public entry point loaded as dist loads it, by the launcher's own loadPart: the
// bundle part out/bundle/undici.cjs with its V8 code cache (cmd/launcher.cts), so that an undici
// floor pays what dist pays to load undici and no more (not dist's main part). For the bench's
// floors (fetch-undici.cjs, pull-undici.cjs).
const { setFlagsFromString } = require('node:v8');
const { loadPart } = require('../../out/bundle/dist.cjs');

module.exports = loadPart('undici');
// As dist does at its first request (lib/remote/transport.ts): wasm stays on V8's baseline
// tier, or Node waits for TurboFan jobs at exit.
setFlagsFromString('--liftoff-only');

#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { main } from './main.js';

// undici parses HTTP in wasm. V8 tiers hot wasm up to TurboFan on background threads, and
// Node waits for those jobs at exit: +130 ms on every short dist fetch (measured: 363 ms ->
// 234 ms for a manifest; a 64 MiB blob 481 ms -> 503 ms, within noise). dist runs once per
// layer under xargs, so stay on the baseline tier. Must be set before undici compiles.
setFlagsFromString('--liftoff-only');

// The process edge: real stdio, env, signals and the exit status.
const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => controller.abort(new Error(`interrupted by ${sig}`)));
}
// A closed stdout (`dist get ... | head`) must not crash with an unhandled EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
});

main(process.argv.slice(2), {
  stdin: () => process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  isTTY: Boolean(process.stdout.isTTY),
  stderrTTY: Boolean(process.stderr.isTTY),
  signal: controller.signal,
}).then(
  (status) => {
    process.exitCode = status;
  },
  (err) => {
    process.stderr.write(`dist: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);

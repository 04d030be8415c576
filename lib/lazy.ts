// Node's built-in modules that only some commands need, loaded at first use with
// process.getBuiltinModule (no module import, no createRequire: ~0.6 ms of every start-up).

/**
 * node:crypto, loaded on first use. Importing it at module level cost 14 ms of every start-up
 * (profiled: dist path and a dist ingest that finds its blob never hash anything), and dist
 * runs once per layer under xargs.
 */
export function crypto(): typeof import('node:crypto') {
  return process.getBuiltinModule('node:crypto');
}

/**
 * Loads node:crypto in the event loop's next check phase: call it right after sending a request
 * whose answer will be hashed. Loading takes ~4 ms, which then overlaps the registry's answer
 * instead of following it (a 33 KiB `dist fetch` measured the load between response and first
 * byte out).
 */
export function cryptoSoon(): void {
  setImmediate(crypto);
}

/** node:tls, loaded on first use: only a https registry needs it (its root certificates). */
export function tls(): typeof import('node:tls') {
  return process.getBuiltinModule('node:tls');
}

/** node:child_process, loaded on first use: only credential helpers, xattrs and pipe growth need it. */
export function childProcess(): typeof import('node:child_process') {
  return process.getBuiltinModule('node:child_process');
}

/** node:net, loaded on first use: only registry commands connect. */
export function net(): typeof import('node:net') {
  return process.getBuiltinModule('node:net');
}

/** node:stream/promises (and node:stream), loaded on first use: `dist path` never pipes. */
export function streamPromises(): typeof import('node:stream/promises') {
  return process.getBuiltinModule('node:stream/promises');
}

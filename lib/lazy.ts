import { createRequire } from 'node:module';

// The bundle's own require where there is one (bin/dist is CommonJS); createRequire cost
// every start-up ~0.6 ms (profiled). The per-file ES modules the tests load make their own.
const load: NodeJS.Require = typeof require === 'function' ? require : createRequire(import.meta.url);

/**
 * node:crypto, loaded on first use. Importing it at module level cost 14 ms of every start-up
 * (profiled: dist path and a dist ingest that finds its blob never hash anything), and dist
 * runs once per layer under xargs.
 */
export function crypto(): typeof import('node:crypto') {
  return load('node:crypto');
}

/** node:tls, loaded on first use: only a https registry needs it (its root certificates). */
export function tls(): typeof import('node:tls') {
  return load('node:tls');
}

/** node:child_process, loaded on first use: only credential helpers and xattrs need it. */
export function childProcess(): typeof import('node:child_process') {
  return load('node:child_process');
}

/** node:net, loaded on first use: only registry commands connect. */
export function net(): typeof import('node:net') {
  return load('node:net');
}

/** node:stream/promises (and node:stream), loaded on first use: `dist path` never pipes. */
export function streamPromises(): typeof import('node:stream/promises') {
  return load('node:stream/promises');
}

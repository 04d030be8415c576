// undici, for the requests that carry a body (an identity-token POST). GET and HEAD, all of
// pull and fetch, go through lib/remote/h1.ts. This module is imported on first use, so the
// bundle's undici part is not loaded by commands that never send a body.
import type { SecureContextOptions } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import type { Dispatcher } from 'undici';
// Only the dispatcher: `import { Agent } from 'undici'` also loads fetch, WebSocket, caches and
// mocks (540 KB bundled; 286 KB this way).
import Agent from 'undici/lib/dispatcher/agent.js';
import undiciRequest from 'undici/lib/api/api-request.js';
import buildConnector from 'undici/lib/core/connect.js';

type Connector = ReturnType<typeof buildConnector>;

let wasmTierSet = false;

/**
 * undici parses HTTP in wasm, compiled at its first connection. V8 tiers hot wasm up to
 * TurboFan on background threads and Node waits for those jobs at exit: +130 ms on a short
 * process (measured). So wasm stays on the baseline tier.
 *
 * Set here, not at start-up: a V8 flag changed at run time makes V8 reject the code caches
 * compiled under the old flags, Node's own built-in modules' included (+6-9 ms per process,
 * measured on `dist path`). Commands that never use undici never pay that.
 */
function baselineWasmOnly(): void {
  if (wasmTierSet) return;
  wasmTierSet = true;
  setFlagsFromString('--liftoff-only');
}

/** An undici agent whose TLS trust comes from `trust` (lib/remote/trust.ts), read on first use. */
export function undiciAgent(opts: { insecure?: boolean; trust: () => SecureContextOptions }): {
  send: (o: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;
  close: () => Promise<void>;
} {
  let plain: Connector | undefined;
  let secure: Connector | undefined;
  const connect: Connector = (options, callback) => {
    baselineWasmOnly();
    if (options.protocol !== 'https:') return (plain ??= buildConnector({}))(options, callback);
    secure ??= buildConnector({ rejectUnauthorized: !opts.insecure, ...opts.trust() });
    return secure(options, callback);
  };
  const agent = new Agent({ keepAliveTimeout: 30_000, headersTimeout: 60_000, bodyTimeout: 120_000, connect });
  return { send: (o) => undiciRequest.call(agent, o), close: () => agent.close() };
}

// How the registry client opens connections: plain TCP at once, TLS with its trust store
// built on first use, and V8's wasm tier set before undici compiles its HTTP parser.
import { readFileSync } from 'node:fs';
import type { SecureContextOptions } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import buildConnector from 'undici/lib/core/connect.js';
import { tls } from '../lazy.js';

export interface TrustOptions {
  /** Skip TLS verification. */
  insecure?: boolean;
  /** PEM CA certificates to trust on top of Node's roots (--ca-file's contents). */
  ca?: string;
  /**
   * NODE_EXTRA_CA_CERTS, when bin/dist kept node from loading it at start-up (see
   * cmd/launcher.cts). Read at the first TLS connection.
   */
  extraCaFile?: string;
  /** The extra CA file cannot be read: node warns and goes on without it, and so does dist. */
  onWarning?: (message: string) => void;
}

type Connector = ReturnType<typeof buildConnector>;

let wasmTierSet = false;

/**
 * undici parses HTTP in wasm, compiled at its first connection. V8 tiers hot wasm up to
 * TurboFan on background threads and Node waits for those jobs at exit: +130 ms on every
 * short dist fetch (measured: 363 ms -> 234 ms for a manifest). dist runs once per layer under
 * xargs, so wasm stays on the baseline tier.
 *
 * Set here, not at start-up: a V8 flag changed at run time makes V8 reject the code caches
 * compiled under the old flags, Node's own built-in modules' included (+6-9 ms per process,
 * measured on `dist path`). Commands that never connect never pay that.
 */
function baselineWasmOnly(): void {
  if (wasmTierSet) return;
  wasmTierSet = true;
  setFlagsFromString('--liftoff-only');
}

/**
 * An undici connector. The TLS trust store (Node's roots plus the extra CA files) is read only
 * when a https connection is first opened: plain-http pulls from a loopback registry never
 * parse a certificate.
 */
export function connector(opts: TrustOptions): Connector {
  let plain: Connector | undefined;
  let secure: Connector | undefined;
  return (options, callback) => {
    baselineWasmOnly();
    if (options.protocol !== 'https:') return (plain ??= buildConnector({}))(options, callback);
    secure ??= buildConnector({ rejectUnauthorized: !opts.insecure, ...trust(opts) });
    return secure(options, callback);
  };
}

function trust(opts: TrustOptions): SecureContextOptions {
  const extra = opts.ca ? [opts.ca] : [];
  if (opts.extraCaFile) {
    try {
      extra.push(readFileSync(opts.extraCaFile, 'utf8'));
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? String(err);
      opts.onWarning?.(`ignoring extra certs from NODE_EXTRA_CA_CERTS=${opts.extraCaFile}: ${reason}`);
    }
  }
  if (extra.length === 0) return {};
  // `ca` replaces the default roots, so they are passed along: extra CAs add to the trust,
  // as with NODE_EXTRA_CA_CERTS, skopeo's --cert-dir and oras' --ca-file.
  return { ca: [...tls().rootCertificates, ...extra] };
}

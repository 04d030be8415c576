// The TLS trust store of the registry client, built when a https connection first needs it:
// plain-http pulls from a loopback registry never parse a certificate.
import { readFileSync } from 'node:fs';
import type { SecureContext, SecureContextOptions } from 'node:tls';
import { DistError } from '../errors.js';
import { tls } from '../lazy.js';

export interface TrustOptions {
  /** PEM file of CA certificates to trust on top of Node's roots (--ca-file). */
  caFile?: string;
  /**
   * NODE_EXTRA_CA_CERTS, when bin/dist kept node from loading it at start-up (see
   * cmd/launcher.cts). Read at the first TLS connection.
   */
  extraCaFile?: string;
  /** The extra CA file cannot be read: node warns and goes on without it, and so does dist. */
  onWarning?: (message: string) => void;
}

/** Reads --ca-file at once: an unreadable file is a usage error, not a later TLS failure. */
export function readCaFile(caFile: string | undefined): string | undefined {
  if (!caFile) return undefined;
  try {
    return readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new DistError('EINVAL', `cannot read --ca-file ${caFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

/**
 * The trust store's options and a secure context of them, each made once on first call.
 * Both are empty (Node's defaults) when there are no extra CAs.
 */
export function trustStore(ca: string | undefined, opts: TrustOptions): { options: () => SecureContextOptions; context: () => SecureContext | undefined } {
  let options: SecureContextOptions | undefined;
  let context: SecureContext | undefined;
  const get = () => (options ??= build(ca, opts));
  return {
    options: get,
    context: () => {
      const o = get();
      if (!o.ca) return undefined;
      return (context ??= tls().createSecureContext(o));
    },
  };
}

function build(ca: string | undefined, opts: TrustOptions): SecureContextOptions {
  const extra = ca ? [ca] : [];
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

import type { RegistryClient } from '../lib/remote/client.js';
import type { Locator } from '../lib/remote/locator.js';
import type { CredentialSource } from '../lib/remote/auth.js';
import { write, type IO } from './io.js';
import type { Args, OptSpec } from './spec.js';

/** The flags every registry command takes (named as oras, skopeo and ctr users expect). */
export const REMOTE_OPTIONS: Record<string, OptSpec> = {
  'plain-http': { type: 'boolean', describe: 'use http (automatic for localhost and 127.0.0.0/8)' },
  insecure: { type: 'boolean', describe: 'skip TLS certificate verification (unsafe)' },
  'ca-file': { type: 'string', describe: 'PEM file of CA certificates to trust' },
};

/** A registry client configured from the flags and the environment's credentials (or the ones given: login). */
export async function clientFor(args: Args, io: IO, command: string, credentials?: CredentialSource): Promise<RegistryClient> {
  const { RegistryClient } = await import('../lib/remote/client.js');
  const { credentialSource } = await import('../lib/remote/auth.js');
  if (args.insecure) await write(io.stderr, `dist ${command}: warning: TLS certificate verification is disabled\n`);
  return new RegistryClient({
    credentials: credentials ?? credentialSource(io.env),
    insecure: Boolean(args.insecure),
    caFile: args.caFile,
    extraCaFile: io.extraCaFile,
    proxy: proxyFromEnv(io.env),
    onWarning: (message) => void write(io.stderr, `dist ${command}: warning: ${message}\n`),
    onRetry: (r) => {
      if (io.env.DIST_DEBUG === '1') void write(io.stderr, `dist ${command}: ${r.reason}; retry ${r.attempt} in ${r.delayMs}ms\n`);
    },
  });
}

export async function locatorFor(text: string, args: Args): Promise<Locator> {
  const { parseLocator } = await import('../lib/remote/locator.js');
  return parseLocator(text, { plainHttp: Boolean(args.plainHttp) });
}

/**
 * HTTPS_PROXY, HTTP_PROXY and NO_PROXY, the lower-case names first as curl and Go read them.
 * An https registry goes through HTTPS_PROXY, else HTTP_PROXY, as skopeo and crane do.
 */
function proxyFromEnv(env: NodeJS.ProcessEnv): { http?: string; https?: string; noProxy?: string } {
  const get = (name: string) => env[name.toLowerCase()] || env[name] || undefined;
  const http = get('HTTP_PROXY');
  return { http, https: get('HTTPS_PROXY') ?? http, noProxy: get('NO_PROXY') };
}

import { join } from 'node:path';
import { writeFileAtomic } from '../fsp.js';
import { DistError } from '../errors.js';
import { mkdirp } from '../fsp.js';
import { statusError, type RegistryClient } from './client.js';
import { credentialHelperFor, dockerConfigKey, readAuthConfig, runCredentialHelper, type AuthConfig, type CredentialEnv, type Credentials } from './auth.js';
import type { Locator } from './locator.js';

/**
 * Checks credentials against a registry: GET /v2/ with the basic or bearer handshake, the
 * client having been made with exactly these credentials. A registry that asks for none says
 * 200 at once (docker login accepts that too). Errors: EREMOTE (authentication failed, with the
 * registry's reason; unreachable), never naming the password.
 */
export async function checkLogin(client: RegistryClient, loc: Locator, signal?: AbortSignal): Promise<void> {
  const res = await client.request(loc, { method: 'GET', path: '/v2/', access: 'none', signal });
  if (res.statusCode === 200) {
    await res.body.dump();
    return;
  }
  throw await statusError(res, `${loc.host}: login check`);
}

/**
 * Writes config.json whole and atomically (a crash leaves the old file or the new one, never
 * half of either), created 0600 so the credentials are never readable by others, even for a
 * moment. A missing directory is made 0700, as docker makes it.
 */
async function writeConfig(dir: string, config: AuthConfig): Promise<void> {
  mkdirp(dir, 0o700);
  await writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(config, null, '\t')}\n`, 0o600);
}

/**
 * `docker-credential-<name> store` or `erase`, run as lib/remote/auth.ts runs every helper (the
 * whole environment, the timeout). Errors: those of runCredentialHelper, and EREMOTE when it
 * fails, with the first line of what it said; its whole output is in `data.output`.
 */
async function helperUpdate(name: string, action: 'store' | 'erase', input: string, env: CredentialEnv): Promise<void> {
  const { code, output } = await runCredentialHelper(name, action, input, env);
  // The helper's output may echo what it was given: only its first line, never the input.
  if (code !== 0) throw new DistError('EREMOTE', `credential helper docker-credential-${name} ${action} failed (exit ${code}): ${output.split('\n')[0]!.slice(0, 200)}`, { output });
}

/**
 * Saves credentials for `host` in `<dir>/config.json` (docker's format): through the configured
 * `credHelpers`/`credsStore` helper when there is one (with an empty `auths` entry, as docker
 * leaves), else as `auths[host].auth`. Every other key is kept.
 */
export async function saveLogin(dir: string, host: string, creds: Required<Pick<Credentials, 'username' | 'password'>>, env: CredentialEnv): Promise<'helper' | 'file'> {
  const config = await readAuthConfig(join(dir, 'config.json'));
  const key = dockerConfigKey(host);
  const helper = credentialHelperFor(config, host);
  config.auths ??= {};
  if (helper) {
    await helperUpdate(helper, 'store', JSON.stringify({ ServerURL: key, Username: creds.username, Secret: creds.password }), env);
    config.auths[key] = {};
  } else {
    config.auths[key] = { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') };
  }
  await writeConfig(dir, config);
  return helper ? 'helper' : 'file';
}

/** Removes the credentials for `host` (file and helper). False when there were none. */
export async function removeLogin(dir: string, host: string, env: CredentialEnv): Promise<boolean> {
  const config = await readAuthConfig(join(dir, 'config.json'));
  const key = dockerConfigKey(host);
  const helper = credentialHelperFor(config, host);
  let removed = false;
  if (helper) {
    try {
      await helperUpdate(helper, 'erase', key, env);
      removed = true;
    } catch (err) {
      if (!/not found/i.test(String((err as DistError).data?.output ?? ''))) throw err;
    }
  }
  for (const k of [key, host]) {
    if (config.auths && k in config.auths) {
      delete config.auths[k];
      removed = true;
    }
  }
  if (removed) await writeConfig(dir, config);
  return removed;
}

import { readFile } from '../fsp.js';
import { join } from 'node:path';
import { DistError, sysCode } from '../errors.js';
import { childProcess } from '../lazy.js';

/** Credentials for one registry. Never printed, logged, or put in an error message. */
export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (`identitytoken` in config.json). */
  identityToken?: string;
}

/** Finds credentials for a registry host. */
export interface CredentialSource {
  get(host: string): Promise<Credentials | undefined>;
}

/**
 * Where credentials come from; cmd/ passes the whole environment in, lib/ never reads it
 * itself. Credential helpers get all of it: `pass` needs GNUPGHOME, `secretservice`
 * DBUS_SESSION_BUS_ADDRESS and XDG_RUNTIME_DIR, and others read their own variables.
 */
export interface CredentialEnv {
  REGISTRY_AUTH_FILE?: string;
  DOCKER_CONFIG?: string;
  HOME?: string;
  PATH?: string;
  /** Seconds a credential helper may take (default HELPER_TIMEOUT_S). */
  DIST_CREDENTIAL_HELPER_TIMEOUT?: string;
  [name: string]: string | undefined;
}

/**
 * A helper that never answers (a keychain waiting on a prompt no one sees, a hung D-Bus)
 * must not hang the pull: 30 s leaves room for a gpg-agent to start and a pinentry to be
 * answered on a terminal.
 */
const HELPER_TIMEOUT_S = 30;

/** A docker config.json (or containers auth.json): the keys dist reads, and any others kept as they are. */
export interface AuthConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [key: string]: unknown;
}

/** The names a host may be stored under in config.json. */
function hostKeys(host: string): string[] {
  if (host === 'docker.io') return ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/'];
  return [host];
}

/** Strips scheme and path from an `auths` key: `https://host:5000/v1/` -> `host:5000`. */
function normalizeKey(key: string): string {
  return key.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
}

/** docker's config directory: $DOCKER_CONFIG, else ~/.docker; undefined when neither is set. */
export function dockerConfigDir(env: CredentialEnv): string | undefined {
  if (env.DOCKER_CONFIG) return env.DOCKER_CONFIG;
  return env.HOME ? join(env.HOME, '.docker') : undefined;
}

/** The name docker keeps a registry under (an `auths` key, a helper's ServerURL): docker.io under its historical v1 URL. */
export function dockerConfigKey(host: string): string {
  return host === 'docker.io' ? 'https://index.docker.io/v1/' : host;
}

/** The credential helper a config names for a host: `credHelpers` under any of its names, else `credsStore`. */
export function credentialHelperFor(config: AuthConfig, host: string): string | undefined {
  return hostKeys(host).map((k) => config.credHelpers?.[k]).find(Boolean) ?? config.credsStore;
}

/**
 * Reads a config.json; a missing file is an empty config. Errors: EINVAL (not JSON, or not a
 * JSON object: login must not overwrite a file it cannot read as a config), the file system's.
 */
export async function readAuthConfig(path: string): Promise<AuthConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (sysCode(err) === 'ENOENT') return {};
    throw err;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new DistError('EINVAL', `${path}: not valid JSON`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new DistError('EINVAL', `${path}: not a JSON object`);
  return doc as AuthConfig;
}

/**
 * Credentials from, in order: `$REGISTRY_AUTH_FILE` (containers auth.json), then
 * `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. In a docker config,
 * `credHelpers[host]`, then `credsStore`, run `docker-credential-<name> get`; else `auths`.
 * A file that is missing is skipped; one that is not a JSON object is an error (EINVAL).
 */
export function credentialSource(env: CredentialEnv): CredentialSource {
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  const dir = dockerConfigDir(env);
  if (dir) files.push(join(dir, 'config.json'));
  let loaded: Promise<AuthConfig[]> | undefined;
  const load = () => (loaded ??= Promise.all(files.map((f) => readAuthConfig(f))));
  return {
    async get(host) {
      for (const config of await load()) {
        const keys = hostKeys(host);
        const helper = credentialHelperFor(config, host);
        if (helper) {
          const found = await helperGet(helper, dockerConfigKey(host), env);
          if (found) return found;
          continue;
        }
        for (const [key, entry] of Object.entries(config.auths ?? {})) {
          if (!keys.includes(key) && !keys.includes(normalizeKey(key))) continue;
          if (entry.identitytoken) return { identityToken: entry.identitytoken };
          if (entry.auth) {
            const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
            const colon = decoded.indexOf(':');
            if (colon < 0) throw new DistError('EINVAL', `credentials for ${host} in config.json are malformed`);
            return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
          }
          if (entry.username) return { username: entry.username, password: entry.password };
        }
      }
      return undefined;
    },
  };
}

/** What a credential helper said: its exit status and its output. */
export interface HelperOutput {
  code: number | null;
  stdout: string;
  /** stdout and stderr together, as they came: the reason a failed helper gives. */
  output: string;
}

/**
 * Runs `docker-credential-<name> <action>` (get, store or erase) with `input` on stdin and the
 * whole environment (see CredentialEnv), and resolves its exit status and output: what a
 * failure means is the caller's to say. Errors: EINVAL (not installed), EREMOTE (no answer
 * within DIST_CREDENTIAL_HELPER_TIMEOUT: the helper is killed and named).
 */
export function runCredentialHelper(name: string, action: 'get' | 'store' | 'erase', input: string, env: CredentialEnv): Promise<HelperOutput> {
  const helper = `docker-credential-${name}`;
  const seconds = Number(env.DIST_CREDENTIAL_HELPER_TIMEOUT) > 0 ? Number(env.DIST_CREDENTIAL_HELPER_TIMEOUT) : HELPER_TIMEOUT_S;
  return new Promise((resolve, reject) => {
    const child = childProcess().spawn(helper, [action], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...env, PATH: env.PATH ?? '/usr/bin:/bin' } });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      // Its own children may keep the pipes open: stop reading them, do not wait for them.
      child.stdout.destroy();
      child.stderr.destroy();
      reject(new DistError('EREMOTE', `credential helper ${helper} did not answer within ${seconds}s`, { hint: 'set DIST_CREDENTIAL_HELPER_TIMEOUT (seconds) to wait longer' }));
    }, seconds * 1000);
    timer.unref();
    let stdout = '';
    let output = '';
    child.stdout.on('data', (c) => {
      stdout += c;
      output += c;
    });
    child.stderr.on('data', (c) => (output += c));
    // A helper may exit without reading its stdin (it knows the one server it serves): the
    // write then fails with EPIPE, which is no failure of the helper; its exit status and
    // output decide.
    child.stdin.on('error', () => {});
    child.on('error', () => {
      clearTimeout(timer);
      reject(new DistError('EINVAL', `credential helper ${helper} is not installed`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, output });
    });
    child.stdin.end(input);
  });
}

/**
 * `docker-credential-<name> get` for one server; "credentials not found" is not an error.
 * Errors: those of runCredentialHelper, and EREMOTE (the helper failed or printed no JSON).
 */
async function helperGet(name: string, serverUrl: string, env: CredentialEnv): Promise<Credentials | undefined> {
  const { code, stdout } = await runCredentialHelper(name, 'get', serverUrl, env);
  if (code !== 0) {
    if (/not found/i.test(stdout)) return undefined;
    throw new DistError('EREMOTE', `credential helper docker-credential-${name} failed (exit ${code})`);
  }
  try {
    const j = JSON.parse(stdout);
    return j.Username === '<token>' ? { identityToken: j.Secret } : { username: j.Username, password: j.Secret };
  } catch {
    throw new DistError('EREMOTE', `credential helper docker-credential-${name} printed no JSON`);
  }
}

/** A parsed WWW-Authenticate challenge. */
export interface Challenge {
  scheme: 'bearer' | 'basic';
  params: Record<string, string>;
}

/** Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`. */
export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  const text = Array.isArray(header) ? header[0] : header;
  if (!text) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/.exec(text);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'basic') return undefined;
  const params: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2]!))) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  return { scheme, params };
}

export function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username ?? ''}:${c.password ?? ''}`).toString('base64')}`;
}

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, createSign, X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as netServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Agent } from 'undici';
import { requireTool } from './cli.js';
import { buildImage, buildIndex, type BuiltImage } from './image.js';
import { tempDir } from './tmp.js';

export interface Registry {
  /** host:port, e.g. 127.0.0.1:41234 */
  host: string;
  url: string;
  dir: string;
  /** With tls: the certificate to trust. */
  caFile?: string;
  /** For authenticated registries: the good credentials. */
  user?: string;
  password?: string;
  /** With token auth: the token server, and what it answered. */
  tokens?: TokenServer;
  /** The server's process id (make bench reads its CPU time from /proc). */
  pid: number;
  stop(): Promise<void>;
}

type Hook = { after(fn: () => unknown): void };

/** A free loopback TCP port (bound then released; the registry binds it right after). */
export async function freePort(): Promise<number> {
  const srv = netServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

export interface RegistryOptions {
  auth?: 'htpasswd' | 'token';
  /** Serve HTTPS with a fresh self-signed certificate for 127.0.0.1 (its PEM path is `caFile`). */
  tls?: boolean;
  /** More names the TLS certificate is valid for (a name only a proxy resolves, say). */
  tlsNames?: string[];
  /**
   * Discard the registry's log rather than read it. make bench runs hyperfine synchronously:
   * no event loop reads the pipe meanwhile, and a registry whose pipe fills (it logs every 404
   * at level error) blocks writing and stops answering (seen: skopeo hung on a push).
   */
  discardLog?: boolean;
}

/**
 * Starts Debian's docker-registry (the CNCF distribution server) on 127.0.0.1 on a free port,
 * with its own temp directory and config; htpasswd basic auth or token auth (with a token
 * server of our own that the registry trusts) when asked. Stopped when the test ends.
 */
export async function startRegistry(t: Hook, opts: RegistryOptions = {}): Promise<Registry> {
  requireTool('docker-registry');
  const dir = await tempDir(t, 'dist-registry-');
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  let auth = '';
  const user = 'dist-user';
  const password = 'correct horse battery staple';
  let token: TokenServer | undefined;
  if (opts.auth === 'htpasswd') {
    requireTool('htpasswd');
    const r = spawnSync('htpasswd', ['-Bbn', user, password], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`htpasswd failed: ${r.stderr}`);
    await writeFile(join(dir, 'htpasswd'), r.stdout);
    auth = `auth:\n  htpasswd:\n    realm: dist-test\n    path: ${join(dir, 'htpasswd')}\n`;
  } else if (opts.auth === 'token') {
    token = await startTokenServer(dir, user, password);
    auth = `auth:\n  token:\n    realm: ${token.realm}\n    service: dist-test\n    issuer: dist-test-issuer\n    rootcertbundle: ${token.certPath}\n`;
  }
  let tls = '';
  let caFile: string | undefined;
  if (opts.tls) {
    requireTool('openssl');
    caFile = join(dir, 'tls.crt');
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'tls.key'), '-out', caFile, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', `subjectAltName=IP:127.0.0.1${(opts.tlsNames ?? []).map((n) => `,DNS:${n}`).join('')}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
    tls = `  tls:\n    certificate: ${caFile}\n    key: ${join(dir, 'tls.key')}\n`;
  }
  const config = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(dir, 'data')}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ${host}
${tls}${auth}`;
  await writeFile(join(dir, 'config.yml'), config);
  const child: ChildProcess = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', opts.discardLog ? 'ignore' : 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c) => (stderr += c));
  const exited = new Promise((r) => child.on('exit', r));
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, delay(3000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await token?.stop();
  };
  t.after(stop);
  for (let i = 0; ; i++) {
    try {
      if (opts.tls) {
        const ok = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', caFile!, `https://${host}/v2/`], { encoding: 'utf8' });
        if (ok.stdout === '200' || ok.stdout === '401') break;
      } else {
        const res = await fetch(`http://${host}/v2/`);
        await res.arrayBuffer();
        if (res.status === 200 || res.status === 401) break;
      }
    } catch {
      /* not up yet */
    }
    if (child.exitCode !== null || i > 200) throw new Error(`docker-registry did not start: ${stderr}`);
    await delay(25);
  }
  return { host, url: `${opts.tls ? 'https' : 'http'}://${host}`, dir, caFile, user: opts.auth ? user : undefined, password: opts.auth ? password : undefined, tokens: token, pid: child.pid!, stop };
}

export interface TokenServer {
  realm: string;
  certPath: string;
  /** Requests it answered, by outcome. */
  issued: number;
  refused: number;
  /** Token requests by POST (the OAuth2 refresh-token grant). */
  posts: number;
  /** The scopes asked for by every token request, in order (`repository:team/app:pull,push`). */
  scopes: string[];
  stop(): Promise<void>;
}

/** The identity token (OAuth2 refresh token) the token server accepts, as `docker login` stores one. */
export const IDENTITY_TOKEN = 'dist-test-identity-token';

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/**
 * A token server of our own: checks Basic credentials and issues ES256 JWTs carrying the
 * requested repository access, signed by a key whose self-signed certificate the registry
 * trusts (rootcertbundle) and which travels in the JWT's x5c header.
 */
async function startTokenServer(dir: string, user: string, password: string): Promise<TokenServer> {
  requireTool('openssl');
  const keyPath = join(dir, 'token.key');
  const certPath = join(dir, 'token.crt');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=dist-test-token'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  const key = await readFile(keyPath, 'utf8');
  const certDer = new X509Certificate(await readFile(certPath)).raw;
  const state = { issued: 0, refused: 0, posts: 0, scopes: [] as string[] };
  const server: Server = createServer(async (req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    let given: string | undefined;
    let scopes = u.searchParams.getAll('scope');
    let service = u.searchParams.get('service');
    if (req.method === 'POST') {
      // OAuth2 refresh-token grant, as `docker login` leaves an identity token for.
      let text = '';
      for await (const c of req) text += c;
      const form = new URLSearchParams(text);
      state.posts++;
      if (form.get('grant_type') !== 'refresh_token' || form.get('refresh_token') !== IDENTITY_TOKEN) {
        state.refused++;
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'invalid refresh token' }] }));
        return;
      }
      given = `${user}:${password}`;
      scopes = form.getAll('scope').flatMap((s) => s.split(' '));
      service = form.get('service');
    } else {
      const auth = req.headers.authorization ?? '';
      given = auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString() : undefined;
    }
    state.scopes.push(...scopes);
    if (given !== undefined && given !== `${user}:${password}`) {
      state.refused++;
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] }));
      return;
    }
    // Anonymous callers get a token with no access, as Docker Hub's auth does.
    const access = given === undefined ? [] : scopes.map((s) => {
      const [type, name, actions] = [s.slice(0, s.indexOf(':')), s.slice(s.indexOf(':') + 1, s.lastIndexOf(':')), s.slice(s.lastIndexOf(':') + 1)];
      return { type, name, actions: actions.split(',') };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'ES256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const claims = { iss: 'dist-test-issuer', sub: given ? user : '', aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: createHash('sha256').update(String(Math.random())).digest('hex'), access };
    const signing = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('SHA256').update(signing).sign({ key, dsaEncoding: 'ieee-p1363' });
    state.issued++;
    res.writeHead(200, { 'content-type': 'application/json' });
    const token = `${signing}.${b64url(sig)}`;
    res.end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certPath,
    get issued() {
      return state.issued;
    },
    get refused() {
      return state.refused;
    },
    get posts() {
      return state.posts;
    },
    get scopes() {
      return state.scopes;
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Authorization for a registry request: Basic, or a Bearer token from the challenge's realm. */
async function authFor(res: Response, reg: Registry, scope: string): Promise<string | undefined> {
  const ch = res.headers.get('www-authenticate');
  if (!ch || !reg.user) return undefined;
  const basic = `Basic ${Buffer.from(`${reg.user}:${reg.password}`).toString('base64')}`;
  if (/^basic/i.test(ch)) return basic;
  const realm = /realm="([^"]+)"/.exec(ch)![1]!;
  const service = /service="([^"]+)"/.exec(ch)?.[1];
  const u = new URL(realm);
  if (service) u.searchParams.set('service', service);
  u.searchParams.set('scope', scope);
  const tr = await fetch(u, { headers: { authorization: basic } });
  const body = (await tr.json()) as { token: string };
  return `Bearer ${body.token}`;
}

/**
 * Pushes an image (or index, with its children) from an OCI layout into the registry with
 * monolithic uploads, keeping every byte as it is, and tags it.
 */
export async function pushFromLayout(reg: Registry, layoutDir: string, repo: string, tag: string, digest: string, mediaType: string): Promise<void> {
  const scope = `repository:${repo}:pull,push`;
  let authorization: string | undefined;
  const dispatcher = reg.caFile ? new Agent({ connect: { ca: await readFile(reg.caFile, 'utf8') } }) : undefined;
  const call = async (method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Response> => {
    for (let i = 0; i < 2; i++) {
      const res = await fetch(path.startsWith('http') ? path : `${reg.url}${path}`, {
        method,
        body,
        headers: { ...headers, ...(authorization ? { authorization } : {}) },
        redirect: 'manual',
        ...(dispatcher ? { dispatcher } : {}),
      } as RequestInit);
      if (res.status === 401 && i === 0) {
        await res.arrayBuffer();
        authorization = await authFor(res, reg, scope);
        continue;
      }
      return res;
    }
    throw new Error('unreachable');
  };
  const blob = (d: string) => readFile(join(layoutDir, 'blobs', 'sha256', d.slice(7)));
  const pushBlob = async (d: string) => {
    const head = await call('HEAD', `/v2/${repo}/blobs/${d}`);
    if (head.status === 200) return;
    const start = await call('POST', `/v2/${repo}/blobs/uploads/`);
    await start.arrayBuffer();
    if (start.status !== 202) throw new Error(`upload start: ${start.status}`);
    const loc = new URL(start.headers.get('location')!, reg.url);
    loc.searchParams.set('digest', d);
    const put = await call('PUT', loc.toString(), await blob(d), { 'content-type': 'application/octet-stream' });
    const text = await put.text();
    if (put.status !== 201) throw new Error(`upload ${d}: ${put.status} ${text}`);
  };
  const pushManifest = async (d: string, mt: string, ref: string) => {
    const bytes = await blob(d);
    const doc = JSON.parse(bytes.toString());
    for (const child of doc.manifests ?? []) await pushManifest(child.digest, child.mediaType, child.digest);
    if (doc.config) await pushBlob(doc.config.digest);
    for (const l of doc.layers ?? []) await pushBlob(l.digest);
    const res = await call('PUT', `/v2/${repo}/manifests/${ref}`, bytes, { 'content-type': mt });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`manifest ${ref}: ${res.status} ${text}`);
  };
  await pushManifest(digest, mediaType, tag);
}

/** Makes a fixture directory. */
export async function fixtureDir(t: Hook, name: string): Promise<string> {
  const d = join(await tempDir(t), name);
  await mkdir(d, { recursive: true });
  return d;
}

/**
 * Pushes a two-platform image index (linux/amd64 and linux/arm64/v8, one layer each holding
 * the file `arch`) to `repo:tag`.
 */
export async function pushTwoPlatformIndex(t: Hook, reg: Registry, repo: string, tag: string): Promise<{ amd: BuiltImage; arm: BuiltImage; index: { digest: string; bytes: Buffer } }> {
  const src = await fixtureDir(t, 'src');
  const amd = await buildImage(src, undefined, [{ arch: 'amd64\n' }]);
  const arm = await buildImage(src, undefined, [{ arch: 'arm64\n' }], { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
  const index = await buildIndex(src, tag, [
    { image: amd, platform: { os: 'linux', architecture: 'amd64' } },
    { image: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  ]);
  await pushFromLayout(reg, src, repo, tag, index.digest, 'application/vnd.oci.image.index.v1+json');
  return { amd, arm, index };
}

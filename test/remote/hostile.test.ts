// The registry client against servers that misbehave on purpose: loopback servers of our own,
// since no real registry sends these. Redirects that change scheme, host or port; a plain-http
// token realm behind a TLS registry; pre-signed URLs in errors; bodies that never end or are
// too large; the retry set.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { RegistryClient } from '../../lib/remote/client.js';
import { listTags } from '../../lib/remote/fetcher.js';
import { parseLocator } from '../../lib/remote/locator.js';
import { runCli } from '../helpers/cli.js';
import { startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A loopback HTTP server; returns host:port, and records what it was asked. */
async function serve(t: any, handler: Handler): Promise<{ host: string; seen: { method: string; url: string; authorization?: string }[] }> {
  const seen: { method: string; url: string; authorization?: string }[] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const DIGEST = `sha256:${'ab'.repeat(32)}`;

/** A docker config directory giving `user:password` for `host`. */
async function credentials(t: any, host: string): Promise<string> {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from('user:password').toString('base64') } } }));
  return dir;
}

test('hostile: a redirect to another port of the same host does not carry Authorization', async (t) => {
  const storage = await serve(t, (_req, res) => res.writeHead(200, { 'content-length': '2' }).end('ok'));
  const registry = await serve(t, (req, res) => {
    if (!req.headers.authorization) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    res.writeHead(307, { location: `http://${storage.host}/blob?sig=1` }).end();
  });
  const r = await runCli(['fetch', `${registry.host}/team/app`, DIGEST], { env: { DOCKER_CONFIG: await credentials(t, registry.host) } });
  // Two bytes that do not hash to the digest; what matters here is where credentials went.
  assert.equal(r.status, 1);
  assert.match(r.stderr, /digest mismatch/);
  assert.ok(registry.seen.some((s) => s.authorization?.startsWith('Basic ')), 'the registry got the credentials');
  assert.deepEqual(storage.seen.map((s) => s.authorization), [undefined], 'the other port did not');
});

test('hostile: basic credentials never go to a plain-http token realm of a TLS registry', async (t) => {
  const reg = await startRegistry(t, { tls: true, auth: 'token' });
  assert.match(reg.tokens!.realm, /^http:/);
  const before = reg.tokens!.issued + reg.tokens!.refused;
  const r = await runCli(['resolve', '--ca-file', reg.caFile!, `https://${reg.host}/team/app:v1`], { env: { DOCKER_CONFIG: await credentials(t, reg.host) } });
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `dist resolve: ${reg.host}: the token realm ${reg.tokens!.realm} is not https; refusing to send credentials to it\n`);
  assert.equal(reg.tokens!.issued + reg.tokens!.refused, before, 'the token server was never asked');
});

test('hostile: errors never show a query string (pre-signed URLs carry signatures)', async (t) => {
  const registry = await serve(t, (_req, res) => res.writeHead(307, { location: 'http://127.0.0.1:1/bucket/blob?X-Amz-Signature=TOPSECRET&X-Amz-Credential=KEY' }).end());
  const r = await runCli(['fetch', `${registry.host}/team/app`, DIGEST]);
  assert.equal(r.status, 1);
  assert.equal(r.stderr.split('\n').length, 2, r.stderr);
  assert.doesNotMatch(r.stderr, /TOPSECRET|X-Amz|KEY/);
});

test('hostile: a token that trickles forever hits the total deadline; an endless tag page is cut off at its bound', async (t) => {
  const timers: NodeJS.Timeout[] = [];
  t.after(() => timers.forEach(clearInterval));
  const token = await serve(t, (_req, res) => {
    // A byte every 20 ms, forever: no inactivity timer ever fires; the deadline must.
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"token":"');
    timers.push(setInterval(() => res.write('t'), 20));
  });
  const registry = await serve(t, (req, res) => {
    if (req.url?.includes('/tags/list')) {
      // An endless stream of tags, as fast as the socket takes them.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"name":"x","tags":[');
      const more = () => {
        while (res.write(`"${'t'.repeat(1000)}",`));
      };
      res.on('drain', more);
      more();
      return;
    }
    res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${token.host}/token",service="s"` }).end();
  });
  const client = new RegistryClient({ bodyDeadlineMs: 1000, retry: { attempts: 1 } });
  t.after(() => client.close());
  const loc = parseLocator(`${registry.host}/team/app`);
  await assert.rejects(client.request(loc, { path: '/v2/team/app/manifests/v1' }), /token response: body not received within 1 s/);
  // A fresh client has seen no challenge, and tags/list asks for none: straight to the page.
  const fresh = new RegistryClient({ bodyDeadlineMs: 60_000, retry: { attempts: 1 } });
  t.after(() => fresh.close());
  await assert.rejects(
    (async () => {
      for await (const _ of listTags(fresh, parseLocator(`${registry.host}/other`)));
    })(),
    /tag list: body is over the 4194304 byte limit/,
  );
});

test('hostile: the retry set is 408, 429, resets and 5xx but 501 and 505', async (t) => {
  const answers: number[] = [];
  const registry = await serve(t, (_req, res) => {
    const status = answers.shift() ?? 200;
    res.writeHead(status, { 'content-type': 'application/json', 'retry-after': '0' }).end(status === 200 ? '{}' : '{"errors":[{"code":"X","message":"no"}]}');
  });
  const client = new RegistryClient({ retry: { attempts: 3, baseMs: 1 } });
  t.after(() => client.close());
  const loc = parseLocator(`${registry.host}/team/app`);
  for (const status of [408, 429, 500, 502, 503, 504, 507, 599]) {
    answers.push(status);
    const res = await client.request(loc, { path: '/v2/' });
    assert.equal(res.statusCode, 200, `${status} was retried`);
    await res.body.dump();
  }
  for (const status of [501, 505, 400, 404]) {
    answers.push(status, 200);
    const res = await client.request(loc, { path: '/v2/' });
    assert.equal(res.statusCode, status, `${status} was not retried`);
    await res.body.dump();
    answers.length = 0;
  }
});

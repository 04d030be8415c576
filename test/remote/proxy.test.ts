// Registries behind a real forward proxy (Debian's squid on a loopback port): HTTP_PROXY,
// HTTPS_PROXY and NO_PROXY in either case, CONNECT for TLS, proxy credentials in the URL.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { buildImage } from '../helpers/image.js';
import { fixtureDir, pushFromLayout, startRegistry, type Registry } from '../helpers/registry.js';
import { startSquid } from '../helpers/squid.js';
import { tempDir } from '../helpers/tmp.js';

/** A name this machine cannot resolve; only the proxy's hosts_file knows it. */
const HIDDEN = 'registry.dist-test.internal';

async function imageIn(t: any, reg: Registry, text: string) {
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, 'v1', [{ 'f.txt': text }]);
  await pushFromLayout(reg, src, 'team/app', 'v1', img.manifest, img.mediaType);
  const layer = await readFile(join(src, 'blobs', 'sha256', img.layers[0]!.slice(7)));
  return { img, layer };
}

const port = (reg: Registry) => reg.host.split(':')[1]!;

test('proxy: a registry only the proxy can resolve is pulled through it (HTTP_PROXY, CONNECT), and its log shows the traffic', async (t) => {
  const reg = await startRegistry(t);
  const { img } = await imageIn(t, reg, 'through the proxy\n');
  const squid = await startSquid(t, { hosts: [HIDDEN] });
  const ref = `${HIDDEN}:${port(reg)}/team/app:v1`;

  const direct = await runCli(['pull', '--plain-http', ref], { root: await tempDir(t) });
  assert.equal(direct.status, 1);
  assert.equal(direct.stderr, `dist pull: cannot resolve host ${HIDDEN}:${port(reg)}\n`);

  for (const name of ['HTTP_PROXY', 'http_proxy']) {
    const root = await tempDir(t);
    const r = await runCli(['pull', '--plain-http', ref], { root, env: { [name]: squid.url } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${img.manifest}\n`);
    const v = await runCli(['verify'], { root });
    assert.equal(v.status, 0, v.stderr);
  }
  const log = await squid.log();
  assert.ok(log.some((l) => l.includes(`CONNECT ${HIDDEN}:${port(reg)}`)), log.join('\n'));
});

test('proxy: NO_PROXY (either case) bypasses the proxy', async (t) => {
  const reg = await startRegistry(t);
  const { img } = await imageIn(t, reg, 'direct\n');
  const squid = await startSquid(t);
  for (const name of ['NO_PROXY', 'no_proxy']) {
    const r = await runCli(['pull', `${reg.host}/team/app:v1`], { root: await tempDir(t), env: { HTTP_PROXY: squid.url, [name]: '127.0.0.1' } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${img.manifest}\n`);
  }
  assert.deepEqual(await squid.log(), []);
  // Without NO_PROXY the same pull goes through the proxy.
  const r = await runCli(['pull', `${reg.host}/team/app:v1`], { root: await tempDir(t), env: { HTTP_PROXY: squid.url } });
  assert.equal(r.status, 0, r.stderr);
  assert.ok((await squid.log()).some((l) => l.includes(`CONNECT ${reg.host}`)));
});

test('proxy: a TLS registry through HTTPS_PROXY, tunnelled with CONNECT, verified against its CA', async (t) => {
  const reg = await startRegistry(t, { tls: true, tlsNames: [HIDDEN] });
  const { img, layer } = await imageIn(t, reg, 'tls through the proxy\n');
  const squid = await startSquid(t, { hosts: [HIDDEN] });
  const url = `${HIDDEN}:${port(reg)}/team/app`;
  const fetched = await runCli(['fetch', '--ca-file', reg.caFile!, url, img.layers[0]!], { env: { https_proxy: squid.url } });
  assert.equal(fetched.status, 0, fetched.stderr);
  assert.ok(fetched.stdoutBytes.equals(layer));
  // Still verified: without the CA the tunnel is made and the certificate refused.
  const unverified = await runCli(['fetch', url, img.layers[0]!], { env: { HTTPS_PROXY: squid.url } });
  assert.equal(unverified.status, 1);
  assert.match(unverified.stderr, /^dist fetch: TLS verification failed for /);
  const log = await squid.log();
  assert.ok(log.filter((l) => l.includes(`CONNECT ${HIDDEN}:${port(reg)}`)).length >= 2, log.join('\n'));
});

test('proxy: credentials in the proxy URL authenticate, and are never printed', async (t) => {
  const reg = await startRegistry(t);
  const { img } = await imageIn(t, reg, 'authenticated proxy\n');
  const auth = { user: 'proxy-user', password: 's3cret pass' };
  const squid = await startSquid(t, { hosts: [HIDDEN], auth });
  const ref = `${HIDDEN}:${port(reg)}/team/app:v1`;
  const ok = await runCli(['pull', '--plain-http', ref], { root: await tempDir(t), env: { HTTP_PROXY: squid.authUrl } });
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout, `${img.manifest}\n`);
  assert.ok((await squid.log()).some((l) => l.includes(`CONNECT ${HIDDEN}:${port(reg)}`) && l.includes(auth.user)));

  const wrong = `http://proxy-user:wrong-secret@127.0.0.1:${squid.port}`;
  const denied = await runCli(['pull', '--plain-http', ref], { root: await tempDir(t), env: { HTTP_PROXY: wrong } });
  assert.equal(denied.status, 1);
  assert.equal(denied.stderr, `dist pull: proxy http://127.0.0.1:${squid.port} requires authentication (407)\n`);
  assert.doesNotMatch(denied.stderr, /wrong-secret/);
});

test('proxy: an unreachable proxy, and one that refuses CONNECT, get one line naming the proxy without credentials', async (t) => {
  const reg = await startRegistry(t);
  await imageIn(t, reg, 'never\n');
  const ref = `${HIDDEN}:${port(reg)}/team/app:v1`;
  const unreachable = await runCli(['pull', '--plain-http', ref], { root: await tempDir(t), env: { HTTP_PROXY: 'http://someone:hunter2@127.0.0.1:1' } });
  assert.equal(unreachable.status, 1);
  assert.equal(unreachable.stderr, 'dist pull: cannot reach proxy http://127.0.0.1:1: ECONNREFUSED\n');

  const squid = await startSquid(t, { hosts: [HIDDEN], denyPorts: [Number(port(reg))] });
  const refused = await runCli(['pull', '--plain-http', ref], { root: await tempDir(t), env: { HTTP_PROXY: `http://someone:hunter2@127.0.0.1:${squid.port}` } });
  assert.equal(refused.status, 1);
  assert.equal(refused.stderr, `dist pull: proxy http://127.0.0.1:${squid.port} refused to connect to ${HIDDEN}:${port(reg)} (403)\n`);
});

// dist serve --mirror: the fault proxy between it and a real docker-registry counts what goes upstream.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnCapture, spawnDist } from '../helpers/cli.js';
import { FaultProxy } from '../helpers/faultproxy.js';
import { buildImage, type BuiltImage } from '../helpers/image.js';
import { containers } from '../helpers/podman.js';
import { fixtureDir, pushFromLayout, startRegistry } from '../helpers/registry.js';
import { busyboxRootfs } from '../helpers/rootfs.js';
import { OS_RELEASE, startServe } from '../helpers/serve.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

/** A registry holding a runnable busybox image plus an 8 MiB layer, behind a fault proxy. */
async function upstream(t: any): Promise<{ proxy: FaultProxy; img: BuiltImage }> {
  const reg = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const tarball = busyboxRootfs(join(await tempDir(t), 'rootfs'));
  const img = await buildImage(src, '1', [
    { tar: tarball, compression: 'gzip' },
    { files: { 'data/big.bin': randomBytes(8 << 20) }, compression: 'none' },
    { files: { 'etc/os-release': OS_RELEASE } },
  ]);
  await pushFromLayout(reg, src, 'team/busybox', '1', img.manifest, img.mediaType);
  const proxy = await new FaultProxy(reg.url).start(t);
  return { proxy, img };
}

const blobGets = (proxy: FaultProxy, digest: string) => proxy.seen.filter((s) => s.method === 'GET' && s.url.endsWith(`/blobs/${digest}`)).length;

test('mirror: eight podman and dist pulls at once through dist serve --mirror make one upstream GET per blob, and all get the image', async (t) => {
  const { proxy, img } = await upstream(t);
  const root = join(await tempDir(t), 'cache');
  const srv = await startServe(t, root, ['--mirror', proxy.url, '--quiet']);
  const ref = `${srv.host}/team/busybox:1`;
  const podmans = await Promise.all([0, 1, 2, 3].map(() => containers(t)));
  const stores = await Promise.all([0, 1, 2, 3].map(async () => join(await tempDir(t), 'store')));
  const results = await Promise.all([
    ...podmans.map((c) => spawnCapture('podman', ['pull', '-q', ref], { env: c.env })),
    ...stores.map((s) => spawnDist(['--root', s, 'pull', ref])),
  ]);
  for (const r of results) assert.equal(r.status, 0, r.stderr);
  for (const r of results.slice(4)) assert.equal(r.stdout, `${img.manifest}\n`);
  for (const d of [img.config, ...img.layers]) assert.equal(blobGets(proxy, d), 1, `upstream GETs of ${d}`);
  // The cache holds the image, named as the upstream's, with nothing left in ingest/.
  assert.deepEqual(await leftovers(root), { blobs: [img.manifest, img.config, ...img.layers].sort(), ingest: [] });
  const index = JSON.parse(readFileSync(join(root, 'index.json'), 'utf8'));
  assert.deepEqual(index.manifests.map((m: any) => m.annotations['org.opencontainers.image.ref.name']), [`${proxy.host}/team/busybox:1`]);
  // What podman pulled runs.
  const run = podmans[0]!.run(['run', '--rm', '--network=none', ref, 'cat', '/etc/os-release']);
  assert.equal(run.stdout, OS_RELEASE);
  // A second round is served from the cache: no more upstream blob GETs.
  const before = proxy.seen.filter((s) => /\/blobs\//.test(s.url)).length;
  const again = await spawnDist(['--root', join(await tempDir(t), 'again'), 'pull', ref]);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(proxy.seen.filter((s) => /\/blobs\//.test(s.url)).length, before);
});

test('mirror: wrong bytes from the upstream reach no client as success and never enter the cache; the next pull after the fault is healed succeeds', async (t) => {
  const { proxy, img } = await upstream(t);
  const big = img.layers[1]!;
  proxy.rules.push({ method: 'GET', path: new RegExp(`/blobs/${big}$`), fault: { corrupt: true } });
  const root = join(await tempDir(t), 'cache');
  const srv = await startServe(t, root, ['--mirror', proxy.url, '--quiet']);
  const ref = `${srv.host}/team/busybox:1`;
  const c = await containers(t);
  const stores = await Promise.all([0, 1].map(async () => join(await tempDir(t), 'store')));
  const results = await Promise.all([spawnCapture('podman', ['pull', '-q', ref], { env: c.env }), ...stores.map((s) => spawnDist(['--root', s, 'pull', ref]))]);
  for (const r of results) assert.notEqual(r.status, 0, `a client took corrupt bytes as success: ${r.stdout}`);
  for (const s of stores) assert.ok(!(await leftovers(s)).blobs.includes(big), 'no client store holds the corrupt blob');
  assert.ok(blobGets(proxy, big) >= 1);
  const cache = await leftovers(root);
  assert.ok(!cache.blobs.includes(big), 'the cache does not hold it');
  assert.deepEqual(cache.ingest, [], 'and keeps no ingest of wrong bytes');
  proxy.rules = [];
  // The cut-short download left dist pull's own ingest holding a prefix with the wrong byte
  // (it keeps broken downloads to resume them): resumed, it fails its digest check once and
  // is discarded, so the pull after that succeeds.
  const resumed = await spawnDist(['--root', stores[0]!, 'pull', ref]);
  if (resumed.status !== 0) {
    assert.match(resumed.stderr, /digest mismatch/);
    assert.deepEqual((await leftovers(stores[0]!)).ingest, []);
    const healed = await spawnDist(['--root', stores[0]!, 'pull', ref]);
    assert.equal(healed.status, 0, healed.stderr);
  }
  const fresh = await spawnDist(['--root', join(await tempDir(t), 'fresh'), 'pull', ref]);
  assert.equal(fresh.status, 0, fresh.stderr);
  assert.equal(fresh.stdout, `${img.manifest}\n`);
  assert.ok((await leftovers(root)).blobs.includes(big));
});

test("mirror: the upstream's credentials come from dist's usual sources ($REGISTRY_AUTH_FILE here)", async (t) => {
  const reg = await startRegistry(t, { auth: 'htpasswd' });
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, '1', [{ 'etc/os-release': OS_RELEASE }]);
  await pushFromLayout(reg, src, 'private/app', '1', img.manifest, img.mediaType);
  const authFile = join(await tempDir(t), 'auth.json');
  writeFileSync(authFile, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${reg.user}:${reg.password}`).toString('base64') } } }));
  const without = await startServe(t, join(await tempDir(t), 'cache0'), ['--mirror', reg.url, '--quiet'], { ...process.env, REGISTRY_AUTH_FILE: '/nonexistent' });
  const refused = await spawnDist(['--root', join(await tempDir(t), 's0'), 'pull', `${without.host}/private/app:1`]);
  assert.notEqual(refused.status, 0, 'no credentials: the upstream refuses');
  const root = join(await tempDir(t), 'cache');
  const srv = await startServe(t, root, ['--mirror', reg.url, '--quiet'], { ...process.env, REGISTRY_AUTH_FILE: authFile });
  const r = await spawnDist(['--root', join(await tempDir(t), 's1'), 'pull', `${srv.host}/private/app:1`]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${img.manifest}\n`);
  assert.deepEqual((await leftovers(root)).blobs, [img.manifest, img.config, ...img.layers].sort());
});

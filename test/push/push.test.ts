import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, sh } from '../helpers/cli.js';
import { FaultProxy } from '../helpers/faultproxy.js';
import { buildImage, type BuiltImage } from '../helpers/image.js';
import { fixtureDir, pushFromLayout, startRegistry, type Registry } from '../helpers/registry.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1 << 20;

/** A registry holding team/app:1 (a small layer, a 3 MiB layer, a config), and a store that pulled it. */
async function pulled(t: any, layer = 3 * MiB): Promise<{ reg: Registry; img: BuiltImage; root: string }> {
  const reg = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, '1', [{ files: { 'etc/os-release': 'ID=dist-test\n' } }, { files: { 'data/blob': randomBytes(layer) }, compression: 'none' }]);
  await pushFromLayout(reg, src, 'team/app', '1', img.manifest, img.mediaType);
  const root = join(await tempDir(t), 'store');
  const r = await runCli(['pull', `${reg.host}/team/app:1`], { root });
  assert.equal(r.status, 0, r.stderr);
  return { reg, img, root };
}

const events = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l));

test('push: pull X && push X round-trips (every blob exists), and a push to a fresh registry uploads it whole', async (t) => {
  const { reg, img, root } = await pulled(t);
  const again = await runCli(['push', '--json', `${reg.host}/team/app:1`], { root });
  assert.equal(again.status, 0, again.stderr);
  const ev = events(again.stdout);
  assert.deepEqual(ev.filter((e) => e.event === 'blob').map((e) => e.status), ['exists', 'exists', 'exists']);
  assert.equal(ev.at(-1).digest, img.manifest);

  const reg2 = await startRegistry(t);
  const r = await runCli(['push', `${reg.host}/team/app:1`, `${reg2.host}/copy/app:2`], { root });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${img.manifest}\n`);
  assert.equal(r.stderr, '');
  const got = JSON.parse(sh(`skopeo inspect --tls-verify=false docker://${reg2.host}/copy/app:2`));
  assert.equal(got.Digest, img.manifest);
  assert.deepEqual(got.Layers, img.layers);
});

test('push: to a new repository of the same registry, every blob is mounted from where it was pulled; no blob bytes are uploaded (counted at the proxy)', async (t) => {
  const reg = await startRegistry(t);
  const proxy = await new FaultProxy(reg.url).start(t);
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, '1', [{ files: { 'etc/os-release': 'ID=dist-test\n' } }, { files: { 'data/blob': randomBytes(3 * MiB) }, compression: 'none' }]);
  await pushFromLayout(reg, src, 'team/app', '1', img.manifest, img.mediaType);
  const root = join(await tempDir(t), 'store');
  assert.equal((await runCli(['pull', `${proxy.host}/team/app:1`], { root })).status, 0);
  proxy.seen = [];
  const r = await runCli(['push', '--json', `${proxy.host}/team/app:1`, `${proxy.host}/other/app:7`], { root });
  assert.equal(r.status, 0, r.stderr);
  const blobs = events(r.stdout).filter((e) => e.event === 'blob');
  assert.deepEqual(blobs.map((e) => [e.status, e.from]), [['mounted', 'team/app'], ['mounted', 'team/app'], ['mounted', 'team/app']]);
  const uploads = proxy.seen.filter((s) => /\/blobs\/uploads\//.test(s.url));
  assert.deepEqual(uploads.map((s) => [s.method, s.status, /mount=sha256/.test(s.url)]), [['POST', 201, true], ['POST', 201, true], ['POST', 201, true]]);
  assert.equal(proxy.sentFor(/\/blobs\//), 0, 'no blob bytes uploaded');
  assert.ok(proxy.seen.every((s) => s.method !== 'PATCH'));
  const got = JSON.parse(sh(`skopeo inspect --tls-verify=false docker://${reg.host}/other/app:7`));
  assert.equal(got.Digest, img.manifest);
});

test('push: a large blob goes in chunks; 429/503 on POST, PATCH and PUT are retried, and a reset mid-body resumes from the registry offset (bytes sent shown)', async (t) => {
  const reg = await startRegistry(t);
  const proxy = await new FaultProxy(reg.url).start(t);
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, '1', [{ files: { 'data/big': randomBytes(80 * MiB) }, compression: 'none' }]);
  const size = img.layerSizes[0]!;
  const root = join(await tempDir(t), 'store');
  // The image goes into the store from an OCI layout by way of a first registry.
  await pushFromLayout(reg, src, 'seed/app', '1', img.manifest, img.mediaType);
  assert.equal((await runCli(['pull', `${reg.host}/seed/app:1`], { root })).status, 0);
  // Per request kind, in order: the first POST gets 429 (Retry-After: 0), the second 503; the
  // first PATCH 503; the third PATCH (the second chunk, 32 MiB from byte 32 MiB) is reset after
  // 20 MiB of its body; the first closing PUT 503.
  const count: Record<string, number> = {};
  const realTake = (proxy as any).take.bind(proxy);
  (proxy as any).take = (req: any) => {
    const faults = realTake(req);
    const kind = req.method === 'PUT' && /digest=/.test(req.url) ? 'close' : req.method;
    const n = (count[kind] = (count[kind] ?? 0) + 1);
    if (kind === 'POST' && n === 1) faults.push({ status: 429, retryAfter: '0' });
    if (kind === 'POST' && n === 2) faults.push({ status: 503 });
    if (kind === 'PATCH' && n === 1) faults.push({ status: 503, retryAfter: '0' });
    if (kind === 'PATCH' && n === 3) faults.push({ resetRequestAfter: 20 * MiB });
    if (kind === 'close' && n === 1) faults.push({ status: 503, retryAfter: '0' });
    return faults;
  };
  const r = await runCli(['push', '--json', `${reg.host}/seed/app:1`, `${proxy.host}/big/app:1`], { root, env: { DIST_DEBUG: '0' } });
  assert.equal(r.status, 0, r.stderr);
  const ev = events(r.stdout);
  const resumes = ev.filter((e) => e.event === 'resume' && e.digest === img.layers[0]);
  assert.deepEqual(resumes.map((e) => e.offset), [0, 32 * MiB], 'the 503 resumes at 0; the reset at the end of the first chunk, not at byte 0');
  const patched = proxy.seen.filter((s) => s.method === 'PATCH');
  assert.deepEqual(patched.map((s) => [s.contentRange, s.status]), [
    [`0-${32 * MiB - 1}`, 503],
    [`0-${32 * MiB - 1}`, 202],
    [`${32 * MiB}-${64 * MiB - 1}`, 0],
    [`${32 * MiB}-${64 * MiB - 1}`, 202],
    [`${64 * MiB}-${size - 1}`, 202],
  ]);
  assert.ok(proxy.seen.some((s) => s.method === 'POST' && s.status === 429));
  assert.ok(proxy.seen.some((s) => s.method === 'POST' && s.status === 503));
  assert.ok(proxy.seen.some((s) => s.method === 'PUT' && s.status === 503));
  const sent = proxy.sentFor(/\/blobs\/uploads\//);
  const done = ev.find((e) => e.event === 'blob' && e.status === 'done' && e.digest === img.layers[0]);
  // What went on the wire: the blob once, plus what the 503 and the reset threw away.
  assert.ok(sent < size + 32 * MiB + 20 * MiB + MiB, `sent ${sent}`);
  assert.ok(sent >= size + 20 * MiB, `sent ${sent}`);
  assert.ok(done.sent >= size + 20 * MiB && done.sent <= sent + 4 * MiB, `dist counted ${done.sent}, the proxy ${sent}`);
  const got = JSON.parse(sh(`skopeo inspect --tls-verify=false docker://${reg.host}/big/app:1`));
  assert.equal(got.Digest, img.manifest);
  t.diagnostic(`blob ${size} bytes; body bytes sent ${sent} (dist counted ${done.sent})`);
});

/** True when the registry has a manifest under the tag (no tag must point at a partial image). */
async function tagged(reg: Registry, repo: string, tag: string): Promise<boolean> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  return res.status === 200;
}

test('push, bad input: each case is one line on stderr, exit 1, the store untouched, and no tag on the registry', async (t) => {
  const { reg, img, root } = await pulled(t);
  const proxy = await new FaultProxy(reg.url).start(t);
  const before = await leftovers(root);
  const ref = `${reg.host}/team/app:1`;
  const cases: [string, string[], RegExp, (() => void)?][] = [
    ['unknown name', ['push', 'nope:1', `${proxy.host}/bad/a:1`], /^dist push: no image named "nope:1" in the store/],
    ['403 on upload', ['push', ref, `${proxy.host}/bad/b:1`], /^dist push: .*bad\/b: access denied/, () => (proxy.rules = [{ method: 'POST', path: /uploads/, fault: { status: 403 } }])],
    ['413 on the manifest', ['push', ref, `${proxy.host}/bad/c:1`], /^dist push: .*bad\/c:1: the manifest \(\d+ bytes\) is over the registry's size limit \(413/, () => (proxy.rules = [{ method: 'PUT', path: /manifests/, fault: { respond: { status: 413, body: '{"errors":[{"code":"SIZE_INVALID","message":"manifest too big"}]}' } } }])],
    ['a Location on another host', ['push', ref, `${proxy.host}/bad/d:1`], /^dist push: .*an upload Location on another host \(192\.0\.2\.1:9\)/, () => (proxy.rules = [{ method: 'POST', path: /uploads/, fault: { respond: { status: 202, body: '', headers: { location: 'http://192.0.2.1:9/v2/bad/d/blobs/uploads/x?_state=y' } } } }])],
    ['an upload the registry forgot (404 on PATCH)', ['push', ref, `${proxy.host}/bad/e:1`], /^dist push: .*the registry forgot the upload \(404 on PATCH: BLOB_UPLOAD_UNKNOWN/, () => (proxy.rules = [{ method: 'PATCH', path: /uploads/, fault: { respond: { status: 404, body: '{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry"}]}' } } }])],
  ];
  for (const [name, args, message, setup] of cases) {
    proxy.rules = [];
    setup?.();
    const r = await runCli(args, { root });
    assert.equal(r.status, 1, `${name}: ${r.stderr}`);
    assert.match(r.stderr, message, name);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: one line`);
    const [, repo] = /\/(bad\/\w)/.exec(args[2]!)!;
    assert.equal(await tagged(reg, repo!, '1'), false, `${name}: no tag`);
  }
  assert.deepEqual(await leftovers(root), before);

  // A name whose blobs are missing from the store: said which, and nothing is sent at all.
  const { unlinkSync } = await import('node:fs');
  unlinkSync(join(root, 'blobs', 'sha256', img.layers[1]!.slice(7)));
  proxy.rules = [];
  proxy.seen = [];
  const r = await runCli(['push', ref, `${proxy.host}/bad/f:1`], { root });
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `dist push: ${ref}: 1 blob missing from the store: ${img.layers[1]}\n`);
  assert.deepEqual(proxy.seen, []);
});

test('push: a registry that answers 401 (htpasswd, no credentials) fails in one line and keeps no tag', async (t) => {
  const reg = await startRegistry(t, { auth: 'htpasswd' });
  const { reg: plain, root } = await pulled(t, MiB);
  const r = await runCli(['push', `${plain.host}/team/app:1`, `${reg.host}/team/app:1`], { root, env: { DOCKER_CONFIG: await tempDir(t) } });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^dist push: .*team\/app: authentication failed.*\(no credentials found for this registry\)\n$/);
  const res = await fetch(`${reg.url}/v2/team/app/manifests/1`, { headers: { authorization: `Basic ${Buffer.from(`${reg.user}:${reg.password}`).toString('base64')}` } });
  assert.equal(res.status, 404);
});

test('push: where the registry refuses chunks (405 on PATCH), a large blob goes in one streamed PUT', async (t) => {
  const { reg, img, root } = await pulled(t);
  const proxy = await new FaultProxy(reg.url).start(t);
  proxy.rules = [{ method: 'PATCH', path: /uploads/, fault: { respond: { status: 405, body: '{"errors":[{"code":"UNSUPPORTED","message":"no chunked uploads"}]}' } } }];
  const r = await runCli(['push', `${reg.host}/team/app:1`, `${proxy.host}/whole/app:1`], { root });
  assert.equal(r.status, 0, r.stderr);
  const put = proxy.seen.filter((s) => s.method === 'PUT' && s.url.includes(img.layers[1]!.replace(':', '%3A')));
  assert.equal(put.length, 1);
  assert.equal(put[0]!.sent, img.layerSizes[1]);
  assert.equal(JSON.parse(sh(`skopeo inspect --tls-verify=false docker://${reg.host}/whole/app:1`)).Digest, img.manifest);
});

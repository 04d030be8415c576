// dist serve --push: the upload protocol request by request, restarts, and real pushers.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { requireTool, runCli, sh } from '../helpers/cli.js';
import { buildImage } from '../helpers/image.js';
import { containers, lowercaseTempDir } from '../helpers/podman.js';
import { busyboxStore, startServe, type Served } from '../helpers/serve.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function pushServer(t: any): Promise<{ root: string; srv: Served }> {
  const root = join(await tempDir(t), 'store');
  sh(`mkdir -p ${root}`);
  return { root, srv: await startServe(t, root, ['--push', '--quiet']) };
}

async function code(res: Response): Promise<string> {
  return ((await res.json()) as { errors: { code: string }[] }).errors[0]!.code;
}

async function begin(srv: Served, repo = 'up/app'): Promise<string> {
  const res = await fetch(`${srv.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(res.status, 202);
  await res.arrayBuffer();
  const location = res.headers.get('location')!;
  assert.match(location, new RegExp(`^/v2/${repo}/blobs/uploads/[0-9a-f-]{36}$`));
  assert.equal(res.headers.get('range'), '0-0');
  return location;
}

const patch = (srv: Served, location: string, body: Buffer, range?: string) =>
  fetch(`${srv.url}${location}`, { method: 'PATCH', body, headers: { 'content-type': 'application/octet-stream', ...(range ? { 'content-range': range } : {}) } });

test('push: monolithic POST ?digest=, POST then PUT, and a mount each commit the blob (201, Location, Docker-Content-Digest)', async (t) => {
  const { root, srv } = await pushServer(t);
  const a = randomBytes(70_000);
  const one = await fetch(`${srv.url}/v2/up/app/blobs/uploads/?digest=${sha(a)}`, { method: 'POST', body: a });
  assert.equal(one.status, 201);
  assert.equal(one.headers.get('location'), `/v2/up/app/blobs/${sha(a)}`);
  assert.equal(one.headers.get('docker-content-digest'), sha(a));
  const b = randomBytes(1 << 20);
  const location = await begin(srv);
  const put = await fetch(`${srv.url}${location}?digest=${sha(b)}`, { method: 'PUT', body: b });
  assert.equal(put.status, 201);
  const mount = await fetch(`${srv.url}/v2/other/repo/blobs/uploads/?mount=${sha(b)}&from=up/app`, { method: 'POST' });
  assert.equal(mount.status, 201);
  assert.equal(mount.headers.get('location'), `/v2/other/repo/blobs/${sha(b)}`);
  assert.deepEqual(await leftovers(root), { blobs: [sha(a), sha(b)].sort(), ingest: [] });
  const back = await fetch(`${srv.url}/v2/other/repo/blobs/${sha(b)}`);
  assert.equal(sha(Buffer.from(await back.arrayBuffer())), sha(b));
});

test('push: streamed PATCH then an empty PUT; chunked PATCHes with Content-Range, status GET, an out-of-order chunk 416, the last chunk in the PUT', async (t) => {
  const { root, srv } = await pushServer(t);
  const streamed = randomBytes(3 << 20);
  const l1 = await begin(srv);
  const p = await patch(srv, l1, streamed);
  assert.equal(p.status, 202);
  assert.equal(p.headers.get('range'), `0-${streamed.length - 1}`);
  const done = await fetch(`${srv.url}${p.headers.get('location')}?digest=${sha(streamed)}`, { method: 'PUT' });
  assert.equal(done.status, 201);

  const blob = randomBytes(100_000);
  const l2 = await begin(srv);
  const c1 = await patch(srv, l2, blob.subarray(0, 40_000), '0-39999');
  assert.equal(c1.status, 202);
  assert.equal(c1.headers.get('range'), '0-39999');
  const c2 = await patch(srv, c1.headers.get('location')!, blob.subarray(40_000, 70_000), '40000-69999');
  assert.equal(c2.headers.get('range'), '0-69999');
  const status = await fetch(`${srv.url}${l2}`);
  assert.equal(status.status, 204);
  assert.equal(status.headers.get('range'), '0-69999');
  const stale = await patch(srv, l2, blob.subarray(10_000, 20_000), '10000-19999');
  assert.equal(stale.status, 416);
  assert.equal(stale.headers.get('range'), '0-69999');
  assert.equal(await code(stale), 'RANGE_INVALID');
  // Out of order on the closing PUT too (distribution-spec 3cafdf4): 416, and the session lives on.
  const early = await fetch(`${srv.url}${l2}?digest=${sha(blob)}`, { method: 'PUT', body: blob.subarray(60_000), headers: { 'content-range': '60000-99999' } });
  assert.equal(early.status, 416);
  assert.equal(await code(early), 'RANGE_INVALID');
  const last = await fetch(`${srv.url}${l2}?digest=${sha(blob)}`, { method: 'PUT', body: blob.subarray(70_000), headers: { 'content-range': '70000-99999' } });
  assert.equal(last.status, 201);
  assert.deepEqual(await leftovers(root), { blobs: [sha(streamed), sha(blob)].sort(), ingest: [] });
});

test('push: a wrong digest at the closing PUT is 400 DIGEST_INVALID and leaves nothing; DELETE cancels a session', async (t) => {
  const { root, srv } = await pushServer(t);
  const blob = randomBytes(50_000);
  const l = await begin(srv);
  await (await patch(srv, l, blob)).arrayBuffer();
  const wrong = await fetch(`${srv.url}${l}?digest=${sha('something else')}`, { method: 'PUT' });
  assert.equal(wrong.status, 400);
  assert.equal(await code(wrong), 'DIGEST_INVALID');
  assert.deepEqual(await leftovers(root), { blobs: [], ingest: [] });
  const gone = await fetch(`${srv.url}${l}`);
  assert.equal(gone.status, 404);
  assert.equal(await code(gone), 'BLOB_UPLOAD_UNKNOWN');

  const l2 = await begin(srv);
  await (await patch(srv, l2, blob)).arrayBuffer();
  assert.equal((await leftovers(root)).ingest.length, 1, 'the session is an ingest');
  const cancel = await fetch(`${srv.url}${l2}`, { method: 'DELETE' });
  assert.equal(cancel.status, 204);
  assert.deepEqual(await leftovers(root), { blobs: [], ingest: [] });
  const bogus = await fetch(`${srv.url}/v2/up/app/blobs/uploads/not-a-session`, { method: 'PATCH', body: 'x' });
  assert.equal(bogus.status, 404);
});

test('push: an upload session survives a restart of dist serve (it is an ingest in the store) and dist active shows it', async (t) => {
  const root = join(await tempDir(t), 'store');
  sh(`mkdir -p ${root}`);
  const first = await startServe(t, root, ['--push', '--quiet']);
  const blob = randomBytes(2 << 20);
  const l = await begin(first);
  await (await patch(first, l, blob.subarray(0, 1 << 20), `0-${(1 << 20) - 1}`)).arrayBuffer();
  assert.equal(await first.stop(), 0);
  const active = await runCli(['active'], { root });
  assert.match(active.stdout, /dist-serve-upload\/[0-9a-f-]{36}/);
  const second = await startServe(t, root, ['--push', '--quiet']);
  const status = await fetch(`${second.url}${l}`);
  assert.equal(status.status, 204);
  assert.equal(status.headers.get('range'), `0-${(1 << 20) - 1}`);
  const rest = await patch(second, l, blob.subarray(1 << 20), `${1 << 20}-${blob.length - 1}`);
  assert.equal(rest.status, 202);
  const put = await fetch(`${second.url}${l}?digest=${sha(blob)}`, { method: 'PUT' });
  assert.equal(put.status, 201);
  assert.deepEqual(await leftovers(root), { blobs: [sha(blob)], ingest: [] });
});

test('push: a manifest whose blobs are missing is MANIFEST_BLOB_UNKNOWN; a complete one is stored as sent and its tag named in index.json', async (t) => {
  const { root, srv } = await pushServer(t);
  const src = join(await tempDir(t), 'src');
  const img = await buildImage(src, undefined, [{ 'a.txt': 'a\n' }]);
  const type = { 'content-type': img.mediaType };
  const early = await fetch(`${srv.url}/v2/up/app/manifests/v1`, { method: 'PUT', body: img.manifestBytes, headers: type });
  assert.equal(early.status, 400);
  assert.equal(await code(early), 'MANIFEST_BLOB_UNKNOWN');
  assert.deepEqual(await leftovers(root), { blobs: [], ingest: [] });
  for (const d of [img.config, ...img.layers]) {
    const bytes = readFileSync(join(src, 'blobs', 'sha256', d.slice(7)));
    assert.equal((await fetch(`${srv.url}/v2/up/app/blobs/uploads/?digest=${d}`, { method: 'POST', body: bytes })).status, 201);
  }
  const wrong = await fetch(`${srv.url}/v2/up/app/manifests/${sha('x')}`, { method: 'PUT', body: img.manifestBytes, headers: type });
  assert.equal(await code(wrong), 'DIGEST_INVALID');
  const ok = await fetch(`${srv.url}/v2/up/app/manifests/v1`, { method: 'PUT', body: img.manifestBytes, headers: type });
  assert.equal(ok.status, 201);
  assert.equal(ok.headers.get('docker-content-digest'), img.manifest);
  const index = JSON.parse(readFileSync(join(root, 'index.json'), 'utf8'));
  assert.deepEqual(index.manifests.map((m: any) => [m.digest, m.annotations?.['org.opencontainers.image.ref.name']]), [[img.manifest, 'up/app:v1']]);
  const back = await fetch(`${srv.url}/v2/up/app/manifests/v1`);
  assert.deepEqual(Buffer.from(await back.arrayBuffer()), img.manifestBytes);
  const images = await runCli(['images', '-q'], { root });
  assert.equal(images.stdout, 'up/app:v1\n');
});

test('push: skopeo copy oci: docker://(dist serve --push), then back: all digests equal', async (t) => {
  requireTool('skopeo');
  const { img, root: source } = await busyboxStore(t);
  const { root, srv } = await pushServer(t);
  sh(`skopeo copy --quiet --dest-tls-verify=false oci:${source}:registry.test/team/busybox:1 docker://${srv.host}/pushed/busybox:2`);
  const index = JSON.parse(readFileSync(join(root, 'index.json'), 'utf8'));
  assert.deepEqual(index.manifests.map((m: any) => [m.digest, m.annotations['org.opencontainers.image.ref.name']]), [[img.manifest, 'pushed/busybox:2']]);
  assert.deepEqual((await leftovers(root)).blobs, [img.manifest, img.config, ...img.layers].sort());
  assert.deepEqual((await leftovers(root)).ingest, []);
  const out = await lowercaseTempDir(t);
  sh(`skopeo copy --quiet --src-tls-verify=false docker://${srv.host}/pushed/busybox:2 oci:${out}:back`);
  assert.equal(JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')).manifests[0].digest, img.manifest);
});

test('push: podman push to dist serve --push, then a fresh podman pulls it back and runs it', async (t) => {
  const { root: source } = await busyboxStore(t);
  const from = await startServe(t, source, ['--quiet']);
  const { srv } = await pushServer(t);
  const c = await containers(t);
  c.run(['pull', '-q', `${from.host}/team/busybox:1`]);
  c.run(['push', '-q', `${from.host}/team/busybox:1`, `${srv.host}/pushed/busybox:3`]);
  const fresh = await containers(t);
  const r = fresh.run(['run', '--rm', '--network=none', `${srv.host}/pushed/busybox:3`, 'cat', '/etc/os-release']);
  assert.match(r.stdout, /ID=dist-serve/);
});

test('push: dist push to dist serve --push, then dist pull it back into another store: every digest equal, nothing left in ingest/', async (t) => {
  const { img, root: source } = await busyboxStore(t);
  const { root, srv } = await pushServer(t);
  const pushed = await runCli(['push', 'registry.test/team/busybox:1', `${srv.host}/pushed/busybox:3`], { root: source });
  assert.equal(pushed.status, 0, pushed.stderr);
  assert.equal(pushed.stdout, `${img.manifest}\n`);
  assert.deepEqual((await leftovers(root)).blobs, [img.manifest, img.config, ...img.layers].sort());
  assert.deepEqual((await leftovers(root)).ingest, []);
  const index = JSON.parse(readFileSync(join(root, 'index.json'), 'utf8'));
  assert.deepEqual(index.manifests.map((m: any) => [m.digest, m.annotations['org.opencontainers.image.ref.name']]), [[img.manifest, 'pushed/busybox:3']]);
  // A second push of the same image finds every blob there (HEAD), and sends no blob again.
  const again = await runCli(['push', '--json', 'registry.test/team/busybox:1', `${srv.host}/pushed/busybox:3`], { root: source });
  assert.equal(again.status, 0, again.stderr);
  const statuses = again.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === 'blob').map((e) => e.status);
  assert.deepEqual(statuses, statuses.map(() => 'exists'));
  const back = join(await tempDir(t), 'back');
  const pulled = await runCli(['pull', `${srv.host}/pushed/busybox:3`], { root: back });
  assert.equal(pulled.status, 0, pulled.stderr);
  assert.equal(pulled.stdout, `${img.manifest}\n`);
  assert.deepEqual((await leftovers(back)).blobs, [img.manifest, img.config, ...img.layers].sort());
});

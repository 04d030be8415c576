// Real clients pull from dist serve: skopeo, podman (and runs what it pulled), ctr, dist pull.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { requireTool, runCli, sh } from '../helpers/cli.js';
import { startContainerd } from '../helpers/containerd.js';
import type { BuiltImage } from '../helpers/image.js';
import { containers, lowercaseTempDir } from '../helpers/podman.js';
import { leftovers } from '../helpers/store.js';
import { busyboxStore, OS_RELEASE, startServe } from '../helpers/serve.js';
import { tempDir } from '../helpers/tmp.js';

const blobsOf = (img: BuiltImage) => [img.manifest, img.config, ...img.layers].sort();

test('clients: skopeo copy docker://(dist serve) oci: keeps every digest', async (t) => {
  requireTool('skopeo');
  const { root, img } = await busyboxStore(t);
  const srv = await startServe(t, root, ['--quiet']);
  const out = await lowercaseTempDir(t);
  sh(`skopeo copy --quiet --src-tls-verify=false docker://${srv.host}/team/busybox:1 oci:${out}:copied`);
  const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8'));
  assert.equal(index.manifests[0].digest, img.manifest);
  assert.deepEqual((await leftovers(out)).blobs, blobsOf(img));
  for (const d of blobsOf(img)) assert.equal(sh(`sha256sum ${join(out, 'blobs', 'sha256', d.slice(7))}`).split(' ')[0], d.slice(7));
});

test('clients: podman pull from dist serve, then podman run --network=none cats /etc/os-release', async (t) => {
  const { root, img } = await busyboxStore(t);
  const srv = await startServe(t, root, ['--quiet']);
  const c = await containers(t);
  c.run(['pull', '-q', `${srv.host}/team/busybox:1`]);
  const digest = c.run(['image', 'inspect', '--format', '{{.Digest}}', `${srv.host}/team/busybox:1`]).stdout.trim();
  assert.equal(digest, img.manifest);
  const r = c.run(['run', '--rm', '--network=none', `${srv.host}/team/busybox:1`, 'cat', '/etc/os-release']);
  assert.equal(r.stdout, OS_RELEASE);
});

test('clients: ctr (containerd on its own socket) pulls with --plain-http and has every blob', async (t) => {
  const { root, img } = await busyboxStore(t);
  const srv = await startServe(t, root, ['--quiet']);
  const ctrd = await startContainerd(t);
  ctrd.ctr(['images', 'pull', '--plain-http', '--snapshotter', 'native', `${srv.host}/team/busybox:1`]);
  const images = ctrd.ctr(['images', 'ls', '-q']);
  assert.match(images, new RegExp(`${srv.host}/team/busybox:1`));
  const content = ctrd.ctr(['content', 'ls', '-q']).trim().split('\n').sort();
  for (const d of blobsOf(img)) assert.ok(content.includes(d), `${d} in containerd's content store`);
  assert.equal(srv.stderr(), '', '--quiet: no access log');
});

test('clients: dist pull from dist serve, into another store', async (t) => {
  const { root, img } = await busyboxStore(t);
  const srv = await startServe(t, root);
  const other = join(await tempDir(t), 'other');
  const r = await runCli(['pull', `${srv.host}/team/busybox:1`], { root: other });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${img.manifest}\n`);
  assert.deepEqual(await leftovers(other), { blobs: blobsOf(img), ingest: [] });
  // One access-log line per request on stderr.
  const lines = srv.stderr().trim().split('\n');
  assert.ok(lines.some((l) => / GET \/v2\/team\/busybox\/manifests\/1 200 /.test(l)), srv.stderr());
  assert.equal(lines.filter((l) => /\/blobs\/sha256:/.test(l)).length, img.layers.length + 1);
});

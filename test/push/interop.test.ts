import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, sh } from '../helpers/cli.js';
import { buildImage } from '../helpers/image.js';
import { containers } from '../helpers/podman.js';
import { fixtureDir, pushFromLayout, pushTwoPlatformIndex, startRegistry } from '../helpers/registry.js';
import { busyboxRootfs } from '../helpers/rootfs.js';
import { tempDir } from '../helpers/tmp.js';

const skopeo = (args: string) => sh(`skopeo inspect --tls-verify=false ${args}`);

test('push then podman: podman pulls what dist pushed and runs it; skopeo inspect agrees with dist inspect (remote and --local), --raw and --config give the bytes', async (t) => {
  const a = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const rootfs = await fixtureDir(t, 'rootfs');
  const img = await buildImage(src, '1', [{ tar: busyboxRootfs(rootfs) }, { 'etc/os-release': 'ID=dist-push-test\nPRETTY_NAME="pushed by dist"\n' }]);
  await pushFromLayout(a, src, 'team/busybox', '1', img.manifest, img.mediaType);
  const root = join(await tempDir(t), 'store');
  assert.equal((await runCli(['pull', `${a.host}/team/busybox:1`], { root })).status, 0);

  const b = await startRegistry(t);
  const target = `${b.host}/pushed/busybox:1`;
  const pushed = await runCli(['push', `${a.host}/team/busybox:1`, target], { root });
  assert.equal(pushed.status, 0, pushed.stderr);
  assert.equal(pushed.stdout, `${img.manifest}\n`);

  const c = await containers(t);
  c.run(['pull', '--tls-verify=false', '-q', target]);
  const ran = c.run(['run', '--rm', '--network=none', target, 'cat', '/etc/os-release']);
  assert.equal(ran.stdout, 'ID=dist-push-test\nPRETTY_NAME="pushed by dist"\n');

  const theirs = JSON.parse(skopeo(`docker://${target}`));
  const r = await runCli(['inspect', target]);
  assert.equal(r.status, 0, r.stderr);
  const ours = JSON.parse(r.stdout);
  for (const key of Object.keys(theirs)) assert.deepEqual(ours[key], theirs[key], key);
  assert.equal(ours.Digest, img.manifest);
  assert.deepEqual(ours.Layers, img.layers);

  const local = JSON.parse((await runCli(['inspect', '--local', `${a.host}/team/busybox:1`], { root })).stdout);
  const { RepoTags, ...rest } = ours;
  assert.deepEqual(RepoTags, ['1']);
  assert.deepEqual({ ...local, Name: undefined }, { ...rest, Name: undefined });
  assert.equal(local.Name, `${a.host}/team/busybox:1`);
  assert.equal((await runCli(['inspect', '--raw', target])).stdout, skopeo(`--raw docker://${target}`));
  assert.equal((await runCli(['inspect', '--config', target])).stdout, skopeo(`--config --raw docker://${target}`));
  assert.equal((await runCli(['inspect', '--local', '--raw', img.manifest], { root })).stdout, img.manifestBytes.toString());
});

test('inspect: an index gives its digest and the host platform manifest, as skopeo does; an unknown image is one line', async (t) => {
  const reg = await startRegistry(t);
  const { index, amd } = await pushTwoPlatformIndex(t, reg, 'team/multi', '1');
  const ref = `${reg.host}/team/multi:1`;
  const theirs = JSON.parse(skopeo(`docker://${ref}`));
  const ours = JSON.parse((await runCli(['inspect', '--platform', 'linux/amd64', ref])).stdout);
  for (const key of Object.keys(theirs)) assert.deepEqual(ours[key], theirs[key], key);
  assert.equal(ours.Digest, index.digest);
  assert.equal(ours.ManifestDigest, amd.manifest);
  assert.deepEqual(ours.Platforms, ['linux/amd64', 'linux/arm64/v8']);
  assert.equal((await runCli(['inspect', '--raw', ref])).stdout, index.bytes.toString());
  const arm = JSON.parse((await runCli(['inspect', '--platform', 'linux/arm64', ref])).stdout);
  assert.equal(arm.Architecture, 'arm64');

  const missing = await runCli(['inspect', `${reg.host}/team/nope:1`]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^dist inspect: .*team\/nope:1: manifest not found\n$/);
  const root = join(await tempDir(t), 'store');
  const noLocal = await runCli(['inspect', '--local', 'nope:1'], { root });
  assert.equal(noLocal.stderr, 'dist inspect: no image named "nope:1" in the store (see dist images)\n');
});

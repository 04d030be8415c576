import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { sh } from '../helpers/cli.js';
import { containers, lowercaseTempDir } from '../helpers/podman.js';
import { dist, sourceImage, startContainerd } from './fixture.js';

test('export: podman loads both formats and runs the image', async (t) => {
  const src = await sourceImage(t);
  const dir = await lowercaseTempDir(t);
  const c = await containers(t);
  for (const format of ['oci', 'docker']) {
    const file = join(dir, `${format}.tar`);
    await dist(['--root', src.root, 'export', src.name, '--format', format, '-o', file]);
    const loaded = c.run(['load', '-i', file]).stdout;
    assert.match(loaded, /localhost\/transfer\/app:1/, `${format}: ${loaded}`);
    const out = c.run(['run', '--rm', '--network=none', src.name, 'cat', '/etc/os-release']).stdout;
    assert.equal(out, 'NAME="dist transfer test"\n', format);
    c.run(['rmi', '-f', src.name]);
  }
});

test('export: skopeo reads oci-archive: (same digests) and docker-archive: from both formats', async (t) => {
  const src = await sourceImage(t);
  const dir = await lowercaseTempDir(t);
  const oci = join(dir, 'oci.tar');
  const docker = join(dir, 'docker.tar');
  await dist(['--root', src.root, 'export', src.name, '-o', oci]);
  await dist(['--root', src.root, 'export', src.name, '--format', 'docker', '-o', docker]);
  sh(`skopeo copy --quiet oci-archive:${oci} oci:${dir}/a:x`);
  const index = JSON.parse(readFileSync(join(dir, 'a', 'index.json'), 'utf8'));
  assert.equal(index.manifests[0].digest, src.image.manifest, 'oci-archive keeps the manifest digest');
  const manifest = JSON.parse(readFileSync(join(dir, 'a', 'blobs', 'sha256', src.image.manifest.slice(7)), 'utf8'));
  assert.deepEqual(manifest.layers.map((l: { digest: string }) => l.digest), src.image.layers);
  // docker-archive: rebuilds the manifest from the config; the DiffIDs stay.
  for (const [i, file] of [oci, docker].entries()) {
    sh(`skopeo copy --quiet docker-archive:${file} oci:${dir}/d${i}:x`);
    const inspect = JSON.parse(sh(`skopeo inspect --config oci:${dir}/d${i}:x`));
    assert.deepEqual(inspect.rootfs.diff_ids, src.image.diffIds);
  }
});

test('export: ctr import takes both formats on its own containerd', async (t) => {
  const src = await sourceImage(t);
  const dir = await lowercaseTempDir(t);
  const { ctr } = await startContainerd(t);
  const oci = join(dir, 'oci.tar');
  await dist(['--root', src.root, 'export', src.name, '-o', oci]);
  ctr(['images', 'import', '--no-unpack', oci]);
  const listed = ctr(['images', 'ls']);
  assert.match(listed, new RegExp(`localhost/transfer/app:1\\s+\\S+\\s+${src.image.manifest}`), listed);
  ctr(['images', 'rm', 'localhost/transfer/app:1']);
  const docker = join(dir, 'docker.tar');
  await dist(['--root', src.root, 'export', src.name, '--format', 'docker', '-o', docker]);
  ctr(['images', 'import', '--no-unpack', docker]);
  assert.match(ctr(['images', 'ls', '-q']), /^localhost\/transfer\/app:1$/m);
});

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { sh } from '../helpers/cli.js';
import { containers, lowercaseTempDir } from '../helpers/podman.js';
import { assertUnpacksLikeUmoci, dist, sourceImage, startContainerd, type Source } from './fixture.js';

/** Imports `file` into a fresh store, checks the printed name and the unpacked tree. */
async function importAndCompare(t: { after(fn: () => unknown): void }, src: Source, file: string, name: string): Promise<string> {
  const root = join(await lowercaseTempDir(t, 'dist-imported-'), 'store');
  assert.equal(await dist(['--root', root, 'import', file]), `${name}\n`, file);
  await assertUnpacksLikeUmoci(t, src, root, name);
  return root;
}

test('import: what skopeo writes to docker-archive: and oci-archive:', async (t) => {
  const src = await sourceImage(t);
  const dir = await lowercaseTempDir(t);
  sh(`skopeo copy --quiet oci:${src.layout}:${src.name} docker-archive:${dir}/docker.tar:${src.name}`);
  await importAndCompare(t, src, `${dir}/docker.tar`, src.name);
  sh(`skopeo copy --quiet oci:${src.layout}:${src.name} oci-archive:${dir}/oci.tar:${src.name}`);
  const root = await importAndCompare(t, src, `${dir}/oci.tar`, src.name);
  assert.match(await dist(['--root', root, 'images']), new RegExp(src.image.manifest), 'oci-archive keeps the manifest digest');
});

test('import: what podman save writes, in both formats', async (t) => {
  const src = await sourceImage(t);
  const dir = await lowercaseTempDir(t);
  const c = await containers(t);
  sh(`skopeo copy --quiet oci:${src.layout}:${src.name} oci-archive:${dir}/in.tar:${src.name}`);
  c.run(['load', '-i', `${dir}/in.tar`]);
  c.run(['save', '--format', 'oci-archive', '-o', `${dir}/oci.tar`, src.name]);
  c.run(['save', '--format', 'docker-archive', '-o', `${dir}/docker.tar`, src.name]);
  await importAndCompare(t, src, `${dir}/oci.tar`, src.name);
  await importAndCompare(t, src, `${dir}/docker.tar`, src.name);
});

test('import: what ctr export writes', async (t) => {
  const src = await sourceImage(t);
  const dir = await lowercaseTempDir(t);
  const { ctr } = await startContainerd(t);
  sh(`skopeo copy --quiet oci:${src.layout}:${src.name} oci-archive:${dir}/in.tar:${src.name}`);
  ctr(['images', 'import', '--no-unpack', '--base-name', 'localhost/transfer/app', `${dir}/in.tar`]);
  ctr(['images', 'export', `${dir}/ctr.tar`, src.name]);
  const root = await importAndCompare(t, src, `${dir}/ctr.tar`, src.name);
  assert.match(await dist(['--root', root, 'images']), new RegExp(src.image.manifest));
});

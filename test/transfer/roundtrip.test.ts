import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { sh, spawnDist } from '../helpers/cli.js';
import { buildImage, buildIndex } from '../helpers/image.js';
import { tempDir } from '../helpers/tmp.js';
import { dist } from './fixture.js';

/** A store with a two-platform index `multi:1` and a single image `single:1`. */
async function twoImages(t: { after(fn: () => unknown): void }) {
  const dir = await tempDir(t);
  const root = join(dir, 'store');
  const amd = await buildImage(root, undefined, [{ 'a.txt': 'amd64\n' }], { platform: { os: 'linux', architecture: 'amd64' } });
  const arm = await buildImage(root, undefined, [{ 'a.txt': 'arm64\n' }], { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
  const index = await buildIndex(root, 'multi:1', [
    { image: amd, platform: { os: 'linux', architecture: 'amd64' } },
    { image: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  ]);
  const single = await buildImage(root, 'single:1', [{ 'b.txt': 'b\n' }, { files: { 'c.txt': 'c\n' }, compression: 'zstd' }]);
  return { dir, root, amd, arm, index, single };
}

const names = (root: string) => JSON.parse(readFileSync(join(root, 'index.json'), 'utf8')).manifests.map((m: any) => [m.annotations['org.opencontainers.image.ref.name'], m.digest]).sort();
const blobs = async (root: string) => (await dist(['--root', root, 'list', '-q'])).split('\n').filter(Boolean).sort();

test('round trip: dist export | dist import keeps every name and digest, both formats of name', async (t) => {
  const s = await twoImages(t);
  const file = join(s.dir, 'all.tar');
  await dist(['--root', s.root, 'export', 'multi:1', 'single:1', '-o', file]);
  const copy = join(s.dir, 'copy');
  assert.equal(await dist(['--root', copy, 'import', file]), 'multi:1\nsingle:1\n');
  assert.deepEqual(names(copy), names(s.root));
  assert.deepEqual(await blobs(copy), await blobs(s.root), 'every blob, both platforms');
  // Again: nothing new is committed, the names stay.
  assert.equal(await dist(['--root', copy, 'import', file]), 'multi:1\nsingle:1\n');
  assert.deepEqual(names(copy), names(s.root));
});

test('export is deterministic: the same images give the same bytes, to a file or to stdout', async (t) => {
  const s = await twoImages(t);
  await dist(['--root', s.root, 'export', 'single:1', 'multi:1', '-o', join(s.dir, 'a.tar')]);
  const piped = await spawnDist(['--root', s.root, 'export', 'single:1', 'multi:1']);
  assert.equal(piped.status, 0, piped.stderr);
  assert.ok(readFileSync(join(s.dir, 'a.tar')).equals(piped.stdoutBytes));
  for (const format of ['oci', 'docker']) {
    await dist(['--root', s.root, 'export', '--format', format, 'single:1', '-o', join(s.dir, `1.${format}`)]);
    await dist(['--root', s.root, 'export', '--format', format, 'single:1', '-o', join(s.dir, `2.${format}`)]);
    assert.ok(readFileSync(join(s.dir, `1.${format}`)).equals(readFileSync(join(s.dir, `2.${format}`))), format);
    const listing = sh(`tar tvf ${join(s.dir, `1.${format}`)}`);
    const paths = listing.trim().split('\n').map((l) => l.split(/\s+/).pop()!);
    assert.deepEqual(paths, [...paths].sort(), 'sorted entries');
    assert.doesNotMatch(listing, /2026|root\/root/, 'epoch times, numeric owner 0');
  }
});

test('export --platform picks one manifest of an index and names it; docker format imports as a Docker manifest with the same DiffIDs', async (t) => {
  const s = await twoImages(t);
  const file = join(s.dir, 'arm.tar');
  await dist(['--root', s.root, 'export', '--platform', 'linux/arm64', 'multi:1', '-o', file]);
  const copy = join(s.dir, 'copy');
  await dist(['--root', copy, 'import', file]);
  assert.deepEqual(names(copy), [['multi:1', s.arm.manifest]]);
  const docker = join(s.dir, 'docker.tar');
  await dist(['--root', s.root, 'export', '--format', 'docker', 'single:1', '-o', docker]);
  const d = join(s.dir, 'd');
  // RepoTags are normalised as docker does.
  assert.equal(await dist(['--root', d, 'import', docker]), 'docker.io/library/single:1\n');
  await dist(['--root', d, 'unpack', 'docker.io/library/single:1', join(s.dir, 'rootfs')]);
  assert.equal(readFileSync(join(s.dir, 'rootfs', 'c.txt'), 'utf8'), 'c\n');
});

test('import reads gzip- and zstd-compressed archives, from a file and from stdin', async (t) => {
  const s = await twoImages(t);
  const tarFile = join(s.dir, 'single.tar');
  await dist(['--root', s.root, 'export', 'single:1', '-o', tarFile]);
  const raw = readFileSync(tarFile);
  const gz = join(s.dir, 'single.tar.gz');
  sh(`gzip -c ${tarFile} > ${gz}`);
  sh(`zstd -q -c ${tarFile} > ${join(s.dir, 'single.tar.zst')}`);
  for (const f of [gz, join(s.dir, 'single.tar.zst')]) {
    const copy = join(s.dir, `copy-${f.slice(-3)}`);
    assert.equal(await dist(['--root', copy, 'import', f]), 'single:1\n');
    assert.deepEqual(names(copy), [['single:1', s.single.manifest]]);
  }
  const viaStdin = join(s.dir, 'stdin');
  assert.equal(await dist(['--root', viaStdin, 'import'], gzipSync(raw)), 'single:1\n');
  assert.equal(await dist(['--root', join(s.dir, 'dash'), 'import', '-'], raw), 'single:1\n');
});

test('import: a manifest.json whose layers are blobs/ entries (Docker 25+ without its index, ggcr, regclient) is rebuilt from the config, DiffIDs checked', async (t) => {
  const s = await twoImages(t);
  const file = join(s.dir, 'single.tar');
  await dist(['--root', s.root, 'export', 'single:1', '-o', file]);
  sh(`tar --delete -f ${file} index.json oci-layout`);
  const copy = join(s.dir, 'copy');
  assert.equal(await dist(['--root', copy, 'import', file]), 'docker.io/library/single:1\n');
  const manifest = JSON.parse(await dist(['--root', copy, 'get', names(copy)[0][1]]));
  assert.equal(manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  assert.deepEqual(manifest.layers.map((l: any) => [l.digest, l.mediaType]), [
    [s.single.layers[0], 'application/vnd.docker.image.rootfs.diff.tar.gzip'],
    [s.single.layers[1], 'application/vnd.oci.image.layer.v1.tar+zstd'],
  ]);
  await dist(['--root', copy, 'unpack', 'docker.io/library/single:1', join(s.dir, 'rootfs')]);
  assert.equal(readFileSync(join(s.dir, 'rootfs', 'c.txt'), 'utf8'), 'c\n');
});

test('import: an index with only some of its platforms (as ctr export writes) imports what is there; export says what is missing', async (t) => {
  const s = await twoImages(t);
  const file = join(s.dir, 'multi.tar');
  await dist(['--root', s.root, 'export', 'multi:1', '-o', file]);
  const armOnly = [s.arm.manifest, s.arm.config, ...s.arm.layers].map((d) => `blobs/sha256/${d.slice(7)}`);
  sh(`tar --delete -f ${file} ${armOnly.join(' ')}`);
  const copy = join(s.dir, 'copy');
  assert.equal(await dist(['--root', copy, 'import', file]), 'multi:1\n');
  assert.deepEqual(names(copy), [['multi:1', s.index.digest]]);
  await dist(['--root', copy, 'unpack', '--platform', 'linux/amd64', 'multi:1', join(s.dir, 'rootfs')]);
  assert.equal(readFileSync(join(s.dir, 'rootfs', 'a.txt'), 'utf8'), 'amd64\n');
  const again = await spawnDist(['--root', copy, 'export', 'multi:1', '-o', join(s.dir, 'again.tar')]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /^dist export: multi:1: the store holds only some platforms of this index \(not linux\/arm64\/v8\) \(export one with --platform/);
  await dist(['--root', copy, 'export', '--platform', 'linux/amd64', 'multi:1', '-o', join(s.dir, 'again.tar')]);
});

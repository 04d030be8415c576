import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { sh, spawnDist } from '../helpers/cli.js';
import { buildImage } from '../helpers/image.js';
import { busyboxRootfs } from '../helpers/rootfs.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';
import { dist } from './fixture.js';

/** A build store with `base:1` (a busybox rootfs) and `app:1` (the same layer plus its own), and a device store holding the base. */
async function device(t: { after(fn: () => unknown): void }) {
  const dir = await tempDir(t);
  const build = join(dir, 'build');
  const rootfs = busyboxRootfs(join(dir, 'rootfs'));
  const base = await buildImage(build, 'base:1', [{ tar: rootfs, compression: 'gzip' }]);
  const app = await buildImage(build, 'app:1', [{ tar: rootfs, compression: 'gzip' }, { 'app/hello': 'hello from the app\n' }]);
  const dev = join(dir, 'device');
  await dist(['--root', build, 'export', 'base:1', '-o', join(dir, 'base.tar')]);
  await dist(['--root', dev, 'import', join(dir, 'base.tar')]);
  return { dir, build, dev, base, app };
}

test('delta: export --exclude-from leaves out what the device holds; the device imports and unpacks it', async (t) => {
  const d = await device(t);
  writeFileSync(join(d.dir, 'held'), await dist(['--root', d.dev, 'list', '-q']));
  const delta = join(d.dir, 'delta.tar');
  const full = join(d.dir, 'full.tar');
  await dist(['--root', d.build, 'export', 'app:1', '--exclude-from', join(d.dir, 'held'), '-o', delta]);
  await dist(['--root', d.build, 'export', 'app:1', '-o', full]);
  // The delta holds the app's manifest, config and own layer, and says what it left out.
  const entries = sh(`tar tf ${delta}`).trim().split('\n');
  const blobs = entries.filter((e) => /^blobs\/sha256\/./.test(e)).map((e) => `sha256:${e.slice(13)}`).sort();
  assert.deepEqual(blobs, [d.app.manifest, d.app.config, d.app.layers[1]!].sort());
  assert.deepEqual(JSON.parse(sh(`tar xOf ${delta} dist-excluded.json`)), { excluded: [d.app.layers[0]] });
  const own = d.app.layerSizes[1]! + d.app.manifestSize + statSync(join(d.build, 'blobs', 'sha256', d.app.config.slice(7))).size;
  assert.ok(statSync(delta).size < own + 16 * 1024, `delta ${statSync(delta).size} bytes is about the app's own ${own}`);
  assert.ok(statSync(full).size > d.app.layerSizes[0]!, 'the full archive carries the base layer');

  assert.equal(await dist(['--root', d.dev, 'import', delta]), 'app:1\n');
  await dist(['--root', d.dev, 'unpack', 'app:1', join(d.dir, 'rootfs-app')]);
  assert.equal(readFileSync(join(d.dir, 'rootfs-app', 'app', 'hello'), 'utf8'), 'hello from the app\n');
  assert.ok(statSync(join(d.dir, 'rootfs-app', 'bin', 'busybox')).size > 100_000);
});

test('delta: a store that lacks the excluded blobs refuses in one line, names nothing, and keeps what it verified; a retry after the base works', async (t) => {
  const d = await device(t);
  writeFileSync(join(d.dir, 'held'), await dist(['--root', d.dev, 'list', '-q']));
  const delta = join(d.dir, 'delta.tar');
  await dist(['--root', d.build, 'export', 'app:1', '--exclude-from', join(d.dir, 'held'), '-o', delta]);
  const empty = join(d.dir, 'empty');
  const r = await spawnDist(['--root', empty, 'import', delta]);
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `dist import: 1 blob the archive left out (a delta archive) and the store lacks: ${d.app.layers[0]} (import the base image first, or export without --exclude-from)\n`);
  assert.deepEqual(JSON.parse(readFileSync(join(empty, 'index.json'), 'utf8')).manifests, []);
  const left = await leftovers(empty);
  assert.deepEqual(left.ingest, []);
  assert.deepEqual(left.blobs, [d.app.manifest, d.app.config, d.app.layers[1]!].sort(), 'the verified blobs stay for a retry');
  await dist(['--root', empty, 'import', join(d.dir, 'base.tar')]);
  assert.equal(await dist(['--root', empty, 'import', delta]), 'app:1\n');
});

test('delta: --exclude-from takes only digests, and only with the oci format', async (t) => {
  const d = await device(t);
  writeFileSync(join(d.dir, 'bad'), 'sha256:../../etc\n');
  const bad = await spawnDist(['--root', d.build, 'export', 'app:1', '--exclude-from', join(d.dir, 'bad'), '-o', join(d.dir, 'x.tar')]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^dist export: [^\n]*digest[^\n]*\n$/);
  writeFileSync(join(d.dir, 'held'), await dist(['--root', d.dev, 'list', '-q']));
  const docker = await spawnDist(['--root', d.build, 'export', '--format', 'docker', 'app:1', '--exclude-from', join(d.dir, 'held'), '-o', join(d.dir, 'x.tar')]);
  assert.equal(docker.status, 1);
  assert.equal(docker.stderr, 'dist export: --exclude-from needs the oci format: docker archives carry every layer\n');
  assert.throws(() => statSync(join(d.dir, 'x.tar')), 'no archive is left behind');
});

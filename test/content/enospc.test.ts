import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnDist } from '../helpers/cli.js';
import { FaultProxy } from '../helpers/faultproxy.js';
import { buildImage } from '../helpers/image.js';
import { fixtureDir, pushFromLayout, startRegistry } from '../helpers/registry.js';
import { leftovers } from '../helpers/store.js';
import { Store } from '../../lib/content/store.js';

// SPEC §5, disk full: ENOSPC fails cleanly, the ingest is left resumable and blobs/ is
// untouched. The store sits on a real tmpfs of 3 MiB, grown afterwards to let the resume finish.

/** A tmpfs of `size` at a fresh directory, unmounted after the test. Needs root, as CI runs. */
async function smallDisk(t: any, size: string): Promise<{ dir: string; grow: (to: string) => void }> {
  if (process.getuid?.() !== 0) throw new Error('the disk-full tests mount a tmpfs: run them as root (make test in CI is)');
  const dir = mkdtempSync(join(tmpdir(), 'dist-disk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  t.after(() => {
    execFileSync('umount', ['-l', dir]);
    rmdirSync(dir);
  });
  return { dir, grow: (to) => execFileSync('mount', ['-o', `remount,size=${to}`, dir]) };
}

const ENOSPC_LINE = /^dist (ingest|pull): writing ingest "[^"]+" at offset \d+: ENOSPC: no space left on device, write\n$/;

test('disk full: dist ingest fails with one line, keeps the partial ingest, and a rerun after space is freed completes it', async (t) => {
  const disk = await smallDisk(t, '3m');
  const root = join(disk.dir, 'store');
  const data = randomBytes(8 << 20);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const args = ['ingest', '--expected-digest', digest, '--expected-size', String(data.length)];
  const env = { ...process.env, DIST_ROOT: root };

  const full = await spawnDist(args, { env, input: data });
  assert.equal(full.status, 1);
  assert.match(full.stderr, ENOSPC_LINE);
  const left = await leftovers(root);
  assert.deepEqual(left.blobs, [], 'nothing half-written in blobs/');
  assert.equal(left.ingest.length, 1, 'the ingest is kept');
  const held = statSync(join(new Store(root).ingestDir(digest), 'data')).size;
  assert.ok(held > 0 && held < data.length, `held ${held} bytes`);
  const active = JSON.parse((await spawnDist(['active', '--json'], { env })).stdout);
  assert.deepEqual([active.ref, active.size, active.total], [digest, held, data.length]);

  disk.grow('32m');
  const again = await spawnDist(args, { env, input: data });
  assert.deepEqual([again.status, again.stderr], [0, '']);
  assert.deepEqual(await leftovers(root), { blobs: [digest], ingest: [] });
});

test('disk full: dist pull fails with one line, no blob of the layer lands, and the next pull resumes it with Range', async (t) => {
  const reg = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, '1', [{ files: { 'big.bin': randomBytes(8 << 20) }, compression: 'none' }]);
  await pushFromLayout(reg, src, 'team/big', '1', img.manifest, img.mediaType);
  const proxy = await new FaultProxy(reg.url).start(t);
  const disk = await smallDisk(t, '3m');
  const root = join(disk.dir, 'store');
  const env = { ...process.env, DIST_ROOT: root };
  const layer = img.layers[0]!;

  const full = await spawnDist(['pull', `${proxy.host}/team/big:1`], { env });
  assert.equal(full.status, 1);
  assert.match(full.stderr, ENOSPC_LINE);
  const left = await leftovers(root);
  assert.ok(!left.blobs.includes(layer), 'the layer is not in blobs/');
  assert.equal(left.ingest.length, 1, 'its ingest is kept');

  disk.grow('32m');
  const sentBefore = proxy.bytesFor(new RegExp(layer));
  const again = await spawnDist(['pull', `${proxy.host}/team/big:1`], { env });
  assert.deepEqual([again.status, again.stderr], [0, '']);
  assert.deepEqual(await leftovers(root), { blobs: [img.manifest, img.config, layer].sort(), ingest: [] });
  const resent = proxy.bytesFor(new RegExp(layer)) - sentBefore;
  assert.ok(resent < img.layerSizes[0]!, `the second pull fetched ${resent} of ${img.layerSizes[0]} bytes`);
});

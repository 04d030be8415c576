import assert from 'node:assert/strict';
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { requireTool, runCli, sh } from '../helpers/cli.js';
import { buildImage, type Entry } from '../helpers/image.js';
import { tempDir } from '../helpers/tmp.js';

// Layer 1 makes etc/ and opt/ (mtime 2024-01-01, the fixtures' time); layer 2 holds only
// whiteouts inside them: a plain one in etc/, an opaque one in opt/ (no directory entries).
const LAYERS: Record<string, Entry>[] = [
  { 'etc/': null, 'etc/gone': 'x\n', 'etc/kept': 'y\n', 'opt/': null, 'opt/old/': null, 'opt/old/f': 'z\n' },
  { 'etc/.wh.gone': '', 'opt/.wh..wh..opq': '' },
];

const times = (root: string, dirs: string[]) => Object.fromEntries(dirs.map((d) => [d, lstatSync(join(root, d)).mtime.toISOString()]));

test('whiteout-only layers leave the directory mtime as it was before the layer, as umoci does', async (t) => {
  requireTool('umoci');
  const layout = await tempDir(t);
  await buildImage(layout, 'wh', LAYERS);
  const out = await tempDir(t);
  sh(`umoci unpack --image ${layout}:wh ${join(out, 'bundle')}`);
  const umoci = times(join(out, 'bundle', 'rootfs'), ['etc', 'opt']);
  assert.deepEqual(umoci, { etc: '2024-01-01T00:00:00.000Z', opt: '2024-01-01T00:00:00.000Z' }, 'umoci keeps the times');

  const r = await runCli(['unpack', 'wh', join(out, 'dist')], { root: layout });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(sh(`ls ${join(out, 'dist', 'etc')} ${join(out, 'dist', 'opt')}`).split(/\s+/).filter(Boolean).sort(), [`${join(out, 'dist', 'etc')}:`, `${join(out, 'dist', 'opt')}:`, 'kept'].sort());
  assert.deepEqual(times(join(out, 'dist'), ['etc', 'opt']), umoci);
});

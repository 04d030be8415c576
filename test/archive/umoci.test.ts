import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { requireTool, sh, spawnDist } from '../helpers/cli.js';
import { buildImage } from '../helpers/image.js';
import { busyboxRootfs, describeTree } from '../helpers/rootfs.js';
import { makeTar, type TarEntry } from '../helpers/tarfixture.js';
import { tempDir } from '../helpers/tmp.js';

/** The second layer: deletes and replaces files and directories, as a diff would. */
function upperLayer(): Buffer {
  const t = 1_700_000_000;
  const entries: TarEntry[] = [
    { name: 'etc/.wh.hostname', type: 'file' },
    { name: 'var/lib/.wh.old', type: 'file' },
    { name: 'etc/passwd', type: 'file', data: 'root:x:0:0:root:/root:/bin/ash\n', mode: 0o644, mtime: t },
    { name: 'etc/motd/', type: 'dir', mode: 0o755, mtime: t },
    { name: 'etc/motd/10-welcome', type: 'file', data: 'hi\n', mtime: t },
    { name: 'opt/replaced-dir', type: 'file', data: 'now a file\n', mtime: t },
    { name: 'usr/share/doc/', type: 'dir', mode: 0o755, mtime: t },
    { name: 'usr/share/doc/.wh..wh..opq', type: 'file' },
    { name: 'usr/share/doc/NEW', type: 'file', data: 'new docs\n', mtime: t },
    { name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox', mtime: t },
    { name: 'usr/bin/passwd-link', type: 'link', linkname: 'etc/passwd' },
    { name: 'root/', type: 'dir', mode: 0o750, mtime: t },
    { name: 'home/user/.profile', type: 'file', data: 'export PS1=#\n', uid: 1000, gid: 1000, mode: 0o600, mtime: t },
    { name: 'usr/bin/.wh.setuid-tool', type: 'file' },
  ];
  return makeTar(entries);
}

test('exactness: dist apply layer by layer gives the same rootfs as umoci unpack', async (t) => {
  requireTool('umoci');
  const dir = await tempDir(t);
  const base = busyboxRootfs(join(dir, 'base'));
  const layout = join(dir, 'layout');
  const img = await buildImage(layout, 'busybox', [{ tar: base, compression: 'gzip' }, { tar: upperLayer(), compression: 'gzip' }]);

  sh(`umoci unpack --image ${layout}:busybox ${join(dir, 'bundle')}`);
  const rootfs = join(dir, 'dist-rootfs');
  for (const [i, layer] of img.layers.entries()) {
    const r = await spawnDist(['apply', rootfs], { input: readFileSync(join(layout, 'blobs', 'sha256', layer.slice(7))) });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${img.diffIds[i]}\n`, 'prints the DiffID');
  }
  const theirs = describeTree(join(dir, 'bundle', 'rootfs'));
  const ours = describeTree(rootfs);
  assert.ok(Object.keys(ours).length > 250, `a real tree (${Object.keys(ours).length} paths)`);
  assert.deepEqual(ours, theirs);
  // The second layer did what it says.
  assert.equal(ours['etc/hostname'], undefined);
  assert.equal(ours['usr/share/doc/pkg'], undefined);
  assert.equal(ours['opt/replaced-dir']?.type, 'file');
  assert.deepEqual(ours['usr/bin/passwd-link']?.links, ['etc/passwd']);
});

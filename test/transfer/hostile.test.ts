import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnDist } from '../helpers/cli.js';
import { buildImage } from '../helpers/image.js';
import { leftovers } from '../helpers/store.js';
import { makeTar, type TarEntry } from '../helpers/tarfixture.js';
import { tempDir } from '../helpers/tmp.js';
import { dist } from './fixture.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const LAYOUT: TarEntry = { name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' };

/**
 * Imports `archive` into a fresh store from a working directory of its own, and asserts one
 * line on stderr matching `message`, exit status 1, no names, nothing in ingest/, no blob
 * beyond `kept`, and nothing written beside the store.
 */
async function refused(t: { after(fn: () => unknown): void }, archive: Buffer, message: RegExp, kept: string[] = []): Promise<void> {
  const dir = await tempDir(t);
  const root = join(dir, 'work', 'store');
  const file = join(dir, 'work', 'archive.tar');
  mkdirSync(join(dir, 'work'));
  writeFileSync(file, archive);
  const r = await spawnDist(['--root', root, 'import', file], { cwd: join(dir, 'work') });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^dist import: [^\n]+\n$/, 'one line');
  assert.match(r.stderr, message);
  const left = await leftovers(root);
  assert.deepEqual(left.ingest, [], 'nothing half-written');
  assert.deepEqual(left.blobs, kept.sort(), 'only verified blobs');
  assert.deepEqual(JSON.parse(readFileSync(join(root, 'index.json'), 'utf8')).manifests, [], 'nothing named');
  for (const p of [join(dir, 'x'), join(dir, 'work', 'x'), '/abs-dist-import-test']) assert.equal(existsSync(p), false, `${p} not written`);
}

test('hostile: entries named ../x or /abs are refused', async (t) => {
  await refused(t, makeTar([LAYOUT, { name: '../x', data: 'escape' }]), /\.\.\/x.*leaves the archive/);
  await refused(t, makeTar([LAYOUT, { name: '/abs-dist-import-test', data: 'abs' }]), /absolute path/);
  await refused(t, makeTar([LAYOUT, { name: 'a/../../x', data: 'escape' }]), /leaves the archive/);
});

test('hostile: symlinks and hardlinks in place of blobs or metadata are refused', async (t) => {
  const hex = sha('x');
  await refused(t, makeTar([{ name: `blobs/sha256/${hex}`, type: 'symlink', linkname: '/etc/passwd' }]), /symlink where a file must be/);
  await refused(t, makeTar([{ name: `blobs/sha256/${hex}`, type: 'link', linkname: 'oci-layout' }, LAYOUT]), /hardlink where a file must be/);
  await refused(t, makeTar([LAYOUT, { name: 'index.json', type: 'symlink', linkname: '../../../etc/passwd' }]), /symlink where a file must be/);
  // A link elsewhere may not point out either (skopeo's legacy layer.tar links point inside).
  await refused(t, makeTar([{ name: 'abc/layer.tar', type: 'symlink', linkname: '../../etc/shadow' }]), /leaves the archive/);
});

test('hostile: index.json or manifest.json over 4 MiB is refused before it is read', async (t) => {
  const big = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
  await refused(t, makeTar([LAYOUT, { name: 'index.json', data: big }]), /index\.json: 4194305 bytes is over the 4 MiB limit/);
  await refused(t, makeTar([{ name: 'manifest.json', data: big }]), /manifest\.json: 4194305 bytes is over the 4 MiB limit/);
});

test('hostile: a blob whose bytes do not match its name', async (t) => {
  const good = Buffer.from('good blob');
  await refused(t, makeTar([{ name: `blobs/sha256/${sha(good)}`, data: good }, { name: `blobs/sha256/${sha('other')}`, data: 'not other' }, LAYOUT]), /digest mismatch/, [`sha256:${sha(good)}`]);
});

test('hostile: manifest.json naming a layer outside the archive, or not in it', async (t) => {
  const config = JSON.stringify({ rootfs: { type: 'layers', diff_ids: [`sha256:${sha('x')}`] } });
  const entry = (layer: string) => JSON.stringify([{ Config: 'c.json', RepoTags: ['evil:1'], Layers: [layer] }]);
  await refused(t, makeTar([{ name: 'c.json', data: config }, { name: 'manifest.json', data: entry('../../etc/passwd') }]), /outside the archive/);
  await refused(t, makeTar([{ name: 'c.json', data: config }, { name: 'manifest.json', data: entry('/etc/passwd') }]), /outside the archive/);
  await refused(t, makeTar([{ name: 'c.json', data: config }, { name: 'manifest.json', data: entry('missing/layer.tar') }]), /not in the archive/);
  // A legacy layer whose DiffID is not the config's is discarded, not committed.
  await refused(t, makeTar([{ name: 'c.json', data: config }, { name: 'l/layer.tar', data: makeTar([{ name: 'f', data: 'y' }]) }, { name: 'manifest.json', data: entry('l/layer.tar') }]), /DiffID .* does not match/);
});

test('hostile: a truncated archive, and a tar bomb (an entry far longer than its header says)', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'src');
  const img = await buildImage(src, 'app:1', [{ 'big.bin': Buffer.alloc(300_000, 7) }, { 'small.txt': 'small\n' }], {});
  await dist(['--root', src, 'export', 'app:1', '-o', join(dir, 'a.tar')]);
  const whole = readFileSync(join(dir, 'a.tar'));
  // Cut inside the last blob: what came before it is verified and kept, nothing is named.
  const order = [img.config, img.manifest, ...img.layers].sort();
  const lastAt = whole.indexOf(Buffer.from(`blobs/sha256/${order.at(-1)!.slice(7)}`));
  const cut = whole.subarray(0, lastAt + 512 + 10);
  await refused(t, cut, /truncated or corrupt/, order.slice(0, -1));
  // A blob entry whose header says 9 bytes, followed by a megabyte more.
  const small = Buffer.from('nine byte');
  const bomb = makeTar([{ name: `blobs/sha256/${sha(small)}`, data: small }], { end: false });
  await refused(t, Buffer.concat([bomb, Buffer.alloc(1 << 20, 0x41), Buffer.alloc(1024)]), /truncated or corrupt/, [`sha256:${sha(small)}`]);
});

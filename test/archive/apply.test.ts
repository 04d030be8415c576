import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { applyTar, ok } from '../helpers/applyharness.js';
import { REPO, requireTool, runCli, spawnCapture, sh } from '../helpers/cli.js';
import { fixChecksum, makeTar, type TarEntry } from '../helpers/tarfixture.js';
import { tempDir } from '../helpers/tmp.js';

const D = (name: string, mode = 0o755, mtime?: number): TarEntry => ({ name, type: 'dir', mode, mtime });
const F = (name: string, data = '', mode = 0o644): TarEntry => ({ name, type: 'file', data, mode });
const S = (name: string, target: string): TarEntry => ({ name, type: 'symlink', linkname: target });
const H = (name: string, target: string): TarEntry => ({ name, type: 'link', linkname: target });
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

test('compression is sniffed: plain, gzip and zstd give the same tree and the DiffID of the tar', async (t) => {
  requireTool('zstd');
  const tar = makeTar([D('a'), F('a/b', 'hello')]);
  const zst = execFileSync('zstd', ['-q', '-c'], { input: tar });
  for (const [kind, bytes] of [['none', tar], ['gzip', gzipSync(tar)], ['zstd', zst]] as const) {
    const a = ok(await applyTar(t, bytes));
    assert.equal(a.result!.compression, kind);
    assert.equal(a.result!.diffId, sha(tar));
    assert.equal(a.result!.digest, sha(bytes));
    assert.equal(readFileSync(join(a.root, 'a', 'b'), 'utf8'), 'hello');
  }
  const empty = ok(await applyTar(t, Buffer.alloc(0)));
  assert.equal(empty.result!.diffId, sha(Buffer.alloc(0)));
});

test('whiteouts remove lower files and directories, never same-layer entries', async (t) => {
  const a = ok(await applyTar(t, [F('.wh.gone'), F('dir/.wh.sub'), F('kept', 'new'), F('.wh.kept'), F('.wh.missing')], (root) => {
    writeFileSync(join(root, 'gone'), 'x');
    mkdirSync(join(root, 'dir', 'sub', 'deep'), { recursive: true });
    writeFileSync(join(root, 'dir', 'sub', 'deep', 'f'), 'x');
    writeFileSync(join(root, 'dir', 'stays'), 'x');
  }));
  assert.deepEqual(readdirSync(a.root).sort(), ['dir', 'kept']);
  assert.deepEqual(readdirSync(join(a.root, 'dir')), ['stays']);
  assert.equal(readFileSync(join(a.root, 'kept'), 'utf8'), 'new');
  assert.ok(!readdirSync(a.root, { recursive: true }).some((n) => String(n).includes('.wh.')), 'no marker is materialised');
});

test('opaque directories hide all lower children, wherever the marker comes; same-layer entries survive', async (t) => {
  const a = ok(await applyTar(t, [D('a'), D('a/b'), D('a/b/c'), F('a/b/c/foo', 'new'), F('a/.wh..wh..opq')], (root) => {
    mkdirSync(join(root, 'a', 'b', 'c'), { recursive: true });
    writeFileSync(join(root, 'a', 'b', 'c', 'bar'), 'lower');
    writeFileSync(join(root, 'a', 'lowerfile'), 'lower');
    writeFileSync(join(root, 'sibling'), 'lower');
  }));
  assert.deepEqual(readdirSync(join(a.root, 'a')), ['b']);
  assert.deepEqual(readdirSync(join(a.root, 'a', 'b', 'c')), ['foo']);
  assert.ok(existsSync(join(a.root, 'sibling')));
});

test('the replace rule: file/dir/symlink conflicts replace; directories merge and take the new attributes', async (t) => {
  const a = ok(await applyTar(t, [F('wasdir', 'now a file'), D('wasfile', 0o700), F('waslink', 'file'), D('merged', 0o711)], (root) => {
    mkdirSync(join(root, 'wasdir', 'x'), { recursive: true });
    writeFileSync(join(root, 'wasfile'), 'x');
    writeFileSync(join(root, 'target'), 'must not change');
    symlinkSync('target', join(root, 'waslink'));
    mkdirSync(join(root, 'merged'), 0o755);
    writeFileSync(join(root, 'merged', 'old'), 'kept');
  }));
  assert.equal(readFileSync(join(a.root, 'wasdir'), 'utf8'), 'now a file');
  assert.ok(statSync(join(a.root, 'wasfile')).isDirectory());
  assert.ok(lstatSync(join(a.root, 'waslink')).isFile());
  assert.equal(readFileSync(join(a.root, 'target'), 'utf8'), 'must not change');
  assert.equal(statSync(join(a.root, 'merged')).mode & 0o7777, 0o711);
  assert.ok(existsSync(join(a.root, 'merged', 'old')));
});

test('metadata: ownership when root, setuid kept (chown before chmod), symlinks stored verbatim, times exact', async (t) => {
  const a = ok(await applyTar(t, [
    { ...F('suid', 'x', 0o4755), uid: 1234, gid: 5678, mtime: 1_600_000_000 },
    { ...S('abs', '/nowhere/at/all'), uid: 42, gid: 43 },
    { ...F('frac', 'y'), pax: { mtime: '1600000000.25', atime: '1600000001.5' } },
    { ...F('biguid', 'z'), pax: { uid: '3000000', gid: '3000001' } },
  ]));
  const st = statSync(join(a.root, 'suid'));
  assert.equal(st.mode & 0o7777, 0o4755);
  assert.deepEqual([st.uid, st.gid, st.mtimeMs], [1234, 5678, 1_600_000_000_000]);
  assert.equal(readlinkSync(join(a.root, 'abs')), '/nowhere/at/all');
  assert.deepEqual([lstatSync(join(a.root, 'abs')).uid, lstatSync(join(a.root, 'abs')).gid], [42, 43]);
  assert.equal(statSync(join(a.root, 'frac')).mtimeMs, 1_600_000_000_250);
  assert.deepEqual([statSync(join(a.root, 'biguid')).uid, statSync(join(a.root, 'biguid')).gid], [3_000_000, 3_000_001]);
});

test('directory mtimes are set after their contents; implied parents are 0755', async (t) => {
  const a = ok(await applyTar(t, [D('d', 0o750, 1_500_000_000), F('d/a', '1'), S('d/l', 'a'), H('d/h', 'd/a'), F('x/y/z', 'implied')]));
  assert.equal(statSync(join(a.root, 'd')).mtimeMs, 1_500_000_000_000);
  assert.equal(statSync(join(a.root, 'x')).mode & 0o7777, 0o755);
  assert.equal(statSync(join(a.root, 'x', 'y')).mode & 0o7777, 0o755);
});

test('hardlinks: to an earlier entry or a lower file; a missing target or a directory is an error', async (t) => {
  const a = ok(await applyTar(t, [F('a', 'data'), H('b', 'a'), H('c', 'lower')], (root) => writeFileSync(join(root, 'lower'), 'l')));
  assert.equal(statSync(join(a.root, 'b')).ino, statSync(join(a.root, 'a')).ino);
  assert.equal(statSync(join(a.root, 'c')).ino, statSync(join(a.root, 'lower')).ino);
  const missing = await applyTar(t, [H('x', 'nope')]);
  assert.equal(missing.error?.code, 'ENOENT');
  const dir = await applyTar(t, [D('d'), H('x', 'd')]);
  assert.equal(dir.error?.code, 'EUNSAFE');
});

test('names: PAX and GNU long names, the ustar prefix field, and non-UTF-8 bytes kept exactly', async (t) => {
  const long = `${'p'.repeat(120)}/${'q'.repeat(150)}`;
  const gnuName = `${'g'.repeat(130)}.txt`;
  const gnu = Buffer.concat([
    makeTar([{ name: '././@LongLink', typeflag: 'L', data: `${gnuName}\0` }], { end: false }),
    makeTar([F(gnuName.slice(0, 100), 'gnu')], { end: false }),
  ]);
  const prefixed = makeTar([F('foo', 'prefixed')], { end: false });
  Buffer.from('a'.repeat(95)).copy(prefixed, 345);
  fixChecksum(prefixed);
  const raw = Buffer.from([0x66, 0xff, 0x80, 0x2e, 0x62, 0x69, 0x6e]);
  const paxRaw = Buffer.from([0x70, 0xe9, 0x2e, 0x74]);
  const tar = Buffer.concat([
    makeTar([F(long, 'long'), { name: raw, type: 'file', data: 'raw' }, { ...F('placeholder', 'pax raw'), pax: { path: paxRaw } }, { name: Buffer.from('lnk'), type: 'symlink', linkname: raw }], { end: false }),
    gnu,
    prefixed,
    Buffer.alloc(1024),
  ]);
  const a = ok(await applyTar(t, gzipSync(tar)));
  assert.equal(readFileSync(join(a.root, long), 'utf8'), 'long');
  assert.equal(readFileSync(join(a.root, gnuName), 'utf8'), 'gnu');
  assert.equal(readFileSync(join(a.root, 'a'.repeat(95), 'foo'), 'utf8'), 'prefixed');
  const names = readdirSync(Buffer.from(a.root), { encoding: 'buffer' });
  assert.ok(names.some((n) => n.equals(raw)), 'the raw byte name exists');
  assert.ok(names.some((n) => n.equals(paxRaw)), 'the PAX raw byte name exists');
  assert.ok(readlinkSync(Buffer.from(join(a.root, 'lnk')), { encoding: 'buffer' }).equals(raw));
});

test('xattrs from SCHILY.xattr records, binary values byte-exact (TestTarWithXattr)', async (t) => {
  requireTool('getfattr');
  const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
  const a = ok(await applyTar(t, [{ ...F('f', 'x'), pax: { 'SCHILY.xattr.user.key': 'value', 'SCHILY.xattr.user.bin': Buffer.concat([cap, Buffer.from([0xff, 0xfe])]) } }, { ...D('d'), pax: { 'SCHILY.xattr.user.dir': 'yes' } }]));
  const dump = sh(`getfattr -d -e hex ${join(a.root, 'f')} ${join(a.root, 'd')}`);
  assert.match(dump, /user\.key=0x76616c7565/);
  assert.match(dump, new RegExp(`user\\.bin=0x${cap.toString('hex')}fffe`));
  assert.match(dump, /user\.dir=0x796573/);
});

test('devices and fifos: made as root, device numbers out of range refused (TestHandleTarTypeBlockCharFifoDeviceRange)', async (t) => {
  const a = ok(await applyTar(t, [{ name: 'null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 }, { name: 'loop', type: 'block', devmajor: 7, devminor: 0, mode: 0o660 }, { name: 'pipe', type: 'fifo', mode: 0o600 }]));
  const st = lstatSync(join(a.root, 'null'));
  assert.ok(st.isCharacterDevice());
  assert.equal(st.rdev, (1 << 8) | 3);
  assert.equal(st.mode & 0o7777, 0o666);
  assert.ok(lstatSync(join(a.root, 'loop')).isBlockDevice());
  assert.ok(lstatSync(join(a.root, 'pipe')).isFIFO());
  const big = makeTar([{ name: 'dev', type: 'block', mode: 0o600 }]);
  // base-256 devmajor = 2^32
  big.fill(0, 329, 337);
  big[329] = 0x80;
  big.writeUInt32BE(0, 333);
  big[332] = 1;
  fixChecksum(big);
  const r = await applyTar(t, big);
  assert.equal(r.error?.code, 'EUNSAFE');
  assert.match(r.error.message, /device number 4294967296:0 out of range/);
});

test('unsupported entry types and sparse files are refused', async (t) => {
  const s = await applyTar(t, [{ name: 'sparse', typeflag: 'S', data: 'x' }]);
  assert.equal(s.error?.code, 'EUNSAFE');
  const p = await applyTar(t, [{ ...F('psparse', 'x'), pax: { 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0' } }]);
  assert.equal(p.error?.code, 'EUNSAFE');
  assert.match(p.error.message, /sparse files are not supported/);
});

test('DirectoryCreation: missing parents are implied', async (t) => {
  const a = ok(await applyTar(t, [D('/etc/subdir'), D('/etc/subdir2/'), D('/etc/subdir2/more'), D('/other/noparent-1/1'), D('/other/noparent-2/2/')], (root) => mkdirSync(join(root, 'etc'))));
  for (const d of ['etc/subdir', 'etc/subdir2/more', 'other/noparent-1/1', 'other/noparent-2/2']) assert.ok(statSync(join(a.root, d)).isDirectory());
});

test('a non-directory in the middle of a path is an error, not clobbered', async (t) => {
  const a = await applyTar(t, [F('f', 'x'), F('f/g', 'y')]);
  assert.equal(a.error?.code, 'EUNSAFE');
  assert.match(a.error.message, /f: not a directory/);
});

test('corrupt input: gzip, zstd and tar errors name the offset', async (t) => {
  requireTool('zstd');
  const tar = makeTar([F('a', 'x'.repeat(100_000))]);
  const badGz = gzipSync(tar);
  badGz[100]! ^= 0xff;
  const g = await applyTar(t, badGz);
  assert.equal(g.error?.code, 'EINVAL');
  assert.match(g.error.message, /^corrupt gzip stream near compressed byte \d+: /);
  const truncGz = gzipSync(tar).subarray(0, 60);
  assert.match((await applyTar(t, truncGz)).error?.message, /^corrupt gzip stream near compressed byte \d+: unexpected end of file/);
  const z = execFileSync('zstd', ['-q', '-c'], { input: tar });
  z[z.length - 10]! ^= 0xff;
  const zr = await applyTar(t, z);
  assert.equal(zr.error?.code, 'EINVAL');
  assert.match(zr.error.message, /corrupt (zstd stream|tar)/);
  const badTar = Buffer.from(tar);
  badTar[10]! ^= 0xff;
  assert.match((await applyTar(t, badTar)).error?.message, /^corrupt tar at byte 0: Invalid tar header/);
  const truncTar = tar.subarray(0, 10_000);
  assert.match((await applyTar(t, truncTar)).error?.message ?? '', /^corrupt tar at byte \d+: Unexpected end of data/);
});

test('dist apply prints the DiffID; bad input is one line and exit 1', async (t) => {
  const dir = await tempDir(t);
  const tar = makeTar([F('hello', 'world')]);
  const r = await runCli(['apply', join(dir, 'rootfs')], { stdin: gzipSync(tar) });
  assert.deepEqual([r.status, r.stdout, r.stderr], [0, `${sha(tar)}\n`, '']);
  const bad = await runCli(['apply', join(dir, 'rootfs2')], { stdin: Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08]), Buffer.alloc(50, 7)]) });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^dist apply: corrupt gzip stream near compressed byte \d+: [^\n]+\n$/);
  const evil = await runCli(['apply', join(dir, 'rootfs3')], { stdin: makeTar([F('.wh..')]) });
  assert.equal(evil.stderr, 'dist apply: invalid whiteout name: .wh..\n');
});

test('not root: no chown, device nodes skipped with a warning, fifos still made', async (t) => {
  requireTool('setpriv');
  const dir = await tempDir(t);
  chmodSync(dir, 0o777);
  // The checkout may sit below a directory `nobody` cannot enter (CI clones into mktemp -d):
  // run a world-readable copy of the built tool, as an installed dist would be.
  const app = join(dir, 'app');
  for (const part of ['bin', 'out/bundle', 'node_modules', 'package.json']) {
    cpSync(join(REPO, part), join(app, part), { recursive: true, filter: (src) => !/node_modules\/(typescript|esbuild|@esbuild|@types)(\/|$)/.test(src) });
  }
  const tar = makeTar([{ ...F('owned', 'x'), uid: 1234, gid: 1234 }, { name: 'null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 }, { name: 'pipe', type: 'fifo', mode: 0o600 }]);
  const r = await spawnCapture('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', join(app, 'bin', 'dist'), 'apply', join(dir, 'rootfs')], { input: tar });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, 'dist apply: warning: null: skipped character-device 1:3 (device nodes need root)\n');
  assert.equal(statSync(join(dir, 'rootfs', 'owned')).uid, 65534);
  assert.ok(lstatSync(join(dir, 'rootfs', 'pipe')).isFIFO());
  assert.ok(!existsSync(join(dir, 'rootfs', 'null')));
});

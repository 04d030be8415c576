// One test per advisory in apply-semantics.md §4 that applies to a layer applier.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyTar, ok, sameFile } from '../helpers/applyharness.js';
import { fixChecksum, makeTar, type TarEntry } from '../helpers/tarfixture.js';

const D = (name: string, mode = 0o755): TarEntry => ({ name, type: 'dir', mode });
const F = (name: string, data = '', mode = 0o644): TarEntry => ({ name, type: 'file', data, mode });
const S = (name: string, target: string): TarEntry => ({ name, type: 'symlink', linkname: target });
const H = (name: string, target: string): TarEntry => ({ name, type: 'link', linkname: target });

test('CVE-2014-6407: symlink and hardlink entries cannot write outside the rootfs', async (t) => {
  const a = ok(await applyTar(t, (tmp) => [S('out', join(tmp, 'canary')), F('out/etc/passwd', 'pwned'), H('hl', join(tmp, 'canary', 'etc', 'passwd'))], (root, tmp) => {
    mkdirSync(join(root, tmp, 'canary', 'etc'), { recursive: true });
    writeFileSync(join(root, tmp, 'canary', 'etc', 'passwd'), 'inside');
  }));
  assert.equal(readFileSync(join(a.root, a.tmp, 'canary', 'etc', 'passwd'), 'utf8'), 'pwned');
  assert.ok(sameFile(a.root, 'hl', join(a.tmp, 'canary', 'etc', 'passwd')));
});

test('CVE-2014-9356: absolute symlinks are evaluated inside the root', async (t) => {
  const a = ok(await applyTar(t, [S('l', '/etc'), F('l/dist-cve-2014-9356', 'x')]));
  assert.ok(existsSync(join(a.root, 'etc', 'dist-cve-2014-9356')));
  assert.ok(!existsSync('/etc/dist-cve-2014-9356'));
});

test('CVE-2019-14271: no code is loaded from the target rootfs (mkfifo from the layer is not run)', async (t) => {
  const a = ok(await applyTar(t, [{ name: 'p', type: 'fifo', mode: 0o600 }], (root, tmp) => {
    for (const dir of ['usr/bin', 'bin', 'usr/local/bin']) {
      mkdirSync(join(root, dir), { recursive: true });
      writeFileSync(join(root, dir, 'mkfifo'), `#!/bin/sh\ntouch ${join(tmp, 'canary', 'PWNED')}\n`);
      chmodSync(join(root, dir, 'mkfifo'), 0o755);
    }
  }));
  assert.ok(lstatSync(join(a.root, 'p')).isFIFO());
});

test('CVE-2021-29136: a symlink entry for the root itself is ignored; later entries stay inside', async (t) => {
  const a = ok(await applyTar(t, (tmp) => [S('/.', join(tmp, 'canary')), S('.', join(tmp, 'canary')), F('passwd', 'x')]));
  assert.ok(lstatSync(a.root).isDirectory());
  assert.equal(readFileSync(join(a.root, 'passwd'), 'utf8'), 'x');
});

test('CVE-2021-32803: a directory replaced by a symlink is re-checked (no cache poisoning)', async (t) => {
  const a = ok(await applyTar(t, [D('x'), F('x/a', '1'), S('x', '../../canary'), F('x/pwned', '2')]));
  assert.ok(lstatSync(join(a.root, 'x')).isSymbolicLink());
  assert.equal(readFileSync(join(a.root, 'canary', 'pwned'), 'utf8'), '2');
});

test('CVE-2021-32804: repeated leading slashes do not make a path absolute', async (t) => {
  const a = ok(await applyTar(t, [F('////tmp/dist-cve-2021-32804', 'x'), F('//../../tmp/dist-cve-2021-32804b', 'y')]));
  assert.equal(readFileSync(join(a.root, 'tmp', 'dist-cve-2021-32804'), 'utf8'), 'x');
  assert.equal(readFileSync(join(a.root, 'tmp', 'dist-cve-2021-32804b'), 'utf8'), 'y');
  assert.ok(!existsSync('/tmp/dist-cve-2021-32804'));
});

test('CVE-2021-37701: backslash is a file name byte, not a separator', async (t) => {
  const a = ok(await applyTar(t, [D('foo'), F('foo\\..\\..\\bar', 'x'), S('foo\\link', '../../canary'), F('foo\\link/in', 'y')]));
  assert.deepEqual(readdirSync(join(a.root, 'foo')), []);
  assert.equal(readFileSync(join(a.root, 'foo\\..\\..\\bar'), 'utf8'), 'x');
  assert.equal(readFileSync(join(a.root, 'canary', 'in'), 'utf8'), 'y');
});

test('CVE-2021-37712: Unicode-equivalent names are distinct byte names; none escapes', async (t) => {
  const nfc = 'caf\u00e9';
  const nfd = 'cafe\u0301';
  const a = ok(await applyTar(t, [D(nfc), S(nfd, '../../canary'), F(`${nfc}/x`, '1'), F(`${nfd}/y`, '2')]));
  assert.equal(readFileSync(join(a.root, nfc, 'x'), 'utf8'), '1');
  assert.equal(readFileSync(join(a.root, 'canary', 'y'), 'utf8'), '2');
});

test('CVE-2021-37713: a drive-relative name like C:../x is a plain name on POSIX', async (t) => {
  const a = ok(await applyTar(t, [F('C:../dist-cve', 'x'), F('C:\\..\\dist-cve2', 'y')]));
  assert.equal(readFileSync(join(a.root, 'C:..', 'dist-cve'), 'utf8'), 'x');
  assert.equal(readFileSync(join(a.root, 'C:\\..\\dist-cve2'), 'utf8'), 'y');
});

test('CVE-2024-28863: extremely deep paths are refused', async (t) => {
  const deep = `${Array.from({ length: 1100 }, () => 'd').join('/')}/f`;
  const a = await applyTar(t, [F(deep, 'x')]);
  assert.equal(a.error?.code, 'EUNSAFE');
  assert.match(a.error.message, /deeper than 1024/);
  assert.deepEqual(readdirSync(a.root), []);
});

test('CVE-2026-23745: absolute link targets resolve inside the root', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), F('etc/hosts', 'inside'), H('hl', '/etc/hosts'), S('sl', '/etc/hosts'), F('sl2/../w', '1')]));
  assert.ok(sameFile(a.root, 'hl', '/etc/hosts'));
  assert.notEqual(lstatSync(join(a.root, 'hl')).ino, statSync('/etc/hosts').ino);
  // A hardlink to a host file that the root lacks fails instead of linking the host file.
  const b = await applyTar(t, [H('passwd', '/etc/passwd')]);
  assert.equal(b.error?.code, 'ENOENT');
  assert.match(b.error.message, /hardlink target \/etc\/passwd does not exist/);
});

test('CVE-2026-24842: a hardlink target with .. is clamped at the root', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), F('etc/hostname', 'inside'), H('x', '../../../etc/hostname'), H('y', 'etc/../../../etc/hostname')]));
  assert.ok(sameFile(a.root, 'x', 'etc/hostname'));
  assert.ok(sameFile(a.root, 'y', 'etc/hostname'));
});

test('CVE-2026-26960: a hardlink through a symlink chain cannot reach a file outside', async (t) => {
  const a = await applyTar(t, [
    D('a'), D('a/b'), D('a/b/c'),
    S('a/b/c/up', '../..'),
    S('a/b/escape', 'c/up/../..'),
    H('exfil', 'a/b/escape/../canary/etc/passwd'),
  ]);
  const outside = statSync(join(a.tmp, 'canary', 'etc', 'passwd'));
  if (a.error) assert.equal(a.error.code, 'ENOENT');
  else assert.notEqual(lstatSync(join(a.root, 'exfil')).ino, outside.ino);
  assert.equal(outside.nlink, 1, 'the outside file gained no link');
});

test('CVE-2018-20835: a file entry over a hardlink replaces it instead of writing into the shared inode', async (t) => {
  const a = ok(await applyTar(t, [F('target', 'original'), H('link', 'target'), F('link', 'overwritten')]));
  assert.equal(readFileSync(join(a.root, 'target'), 'utf8'), 'original');
  assert.equal(readFileSync(join(a.root, 'link'), 'utf8'), 'overwritten');
});

test('CVE-2024-12905: entries written through an escaping symlink land inside', async (t) => {
  const a = ok(await applyTar(t, [S('x', '../outside'), F('x/y', 'z')]));
  assert.equal(readFileSync(join(a.root, 'outside', 'y'), 'utf8'), 'z');
});

test('CVE-2025-48387: directory entries get the same parent resolution', async (t) => {
  const a = ok(await applyTar(t, [S('x', '/..'), D('x/evil'), D('x/evil/deeper')]));
  assert.ok(lstatSync(join(a.root, 'evil', 'deeper')).isDirectory());
});

test('CVE-2025-59343: a sibling directory sharing the root prefix is not inside', async (t) => {
  const a = ok(await applyTar(t, [S('x', '../root-evil'), F('x/y', 'z')], (_root, tmp) => mkdirSync(join(tmp, 'root-evil'))));
  assert.deepEqual(readdirSync(join(a.tmp, 'root-evil')), []);
  assert.equal(readFileSync(join(a.root, 'root-evil', 'y'), 'utf8'), 'z');
});

test('CVE-2022-2879: an oversized PAX header is refused without buffering it', async (t) => {
  const h = makeTar([{ name: 'PaxHeader', type: 'x', data: 'x' }], { end: false });
  h.write('00077777777\0', 124, 'ascii'); // size field: 2 GiB of PAX records
  fixChecksum(h);
  const before = process.memoryUsage().rss;
  const a = await applyTar(t, h);
  assert.equal(a.error?.code, 'EINVAL');
  assert.match(a.error.message, /corrupt tar at byte 0: Header exceeds max size/);
  assert.ok(process.memoryUsage().rss - before < 256 << 20);
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, linkSync, mkdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { requireTool, sh, spawnDist } from '../helpers/cli.js';
import { lawTree, treeDifferences } from '../helpers/lawtree.js';
import { busyboxRootfs } from '../helpers/rootfs.js';
import { tempDir } from '../helpers/tmp.js';
import { tar } from '../../lib/archive/tar.js';
import { aptInstall, debianRootfs, makeDeb } from '../helpers/debian.js';

const CAP = '0x0100000200200000000000000000000000000000'; // cap_net_raw+p, as setcap writes it

/** Real changes of every kind the law covers, made to a copy of the busybox rootfs. */
function change(upper: string): void {
  const p = (s: string) => join(upper, s);
  writeFileSync(p('etc/motd'), 'changed\n'); // a content edit
  // Same size, same second, nanoseconds 0 on both sides (as after an unpack): only content tells.
  writeFileSync(p('etc/hostname'), 'BUSYBOX\n');
  utimesSync(p('etc/hostname'), 1_650_000_000, 1_650_000_000);
  rmSync(p('var/lib/old'), { recursive: true }); // a deleted directory
  rmSync(p('usr/bin/setuid-tool')); // a deleted file
  rmSync(p('opt/replaced-dir'), { recursive: true }); // a directory replaced by a file
  writeFileSync(p('opt/replaced-dir'), 'now a file\n');
  rmSync(p('usr/share/doc/pkg/README')); // every old child gone: opaque
  writeFileSync(p('usr/share/doc/pkg/NEW'), 'new\n');
  unlinkSync(p('etc/passwd')); // a file replaced by a directory ("and back")
  mkdirSync(p('etc/passwd'));
  writeFileSync(p('etc/passwd/inside'), 'x\n');
  chmodSync(p('root'), 0o750); // permission changes
  chmodSync(p('etc/group'), 0o600);
  chownSync(p('home/user/.profile'), 1001, 1001);
  linkSync(p('etc/group'), p('etc/group-link')); // a new hardlink to an unchanged file
  unlinkSync(p('usr/bin/busybox-hardlink')); // a hardlink split off: same content, own inode
  writeFileSync(p('usr/bin/busybox-hardlink'), readFileSync(p('bin/busybox')));
  utimesSync(p('usr/bin/busybox-hardlink'), 1_650_000_000, 1_650_000_000);
  unlinkSync(p('bin/sh')); // a symlink re-pointed
  symlinkSync('/bin/busybox', p('bin/sh'));
  execFileSync('setfattr', ['-n', 'security.capability', '-v', CAP, p('bin/busybox')]); // xattrs
  execFileSync('setfattr', ['-n', 'user.note', '-v', 'hello', p('etc/motd')]);
  execFileSync('mknod', ['-m', '600', p('dev/zero'), 'c', '1', '5']); // a device
  execFileSync('mkfifo', [p('tmp/new-fifo')]);
  writeFileSync(Buffer.from(`${upper}/tmp/caf\xe9-latin1`, 'latin1'), 'bytes\n'); // a non-UTF-8 name
  const long = `opt/${'d'.repeat(120)}/${'f'.repeat(150)}`; // names past ustar's 100 bytes
  mkdirSync(p(long.slice(0, long.lastIndexOf('/'))), { recursive: true });
  writeFileSync(p(long), 'long\n');
  mkdirSync(p('srv/new/deep'), { recursive: true }); // a new tree with hardlinks inside it
  writeFileSync(p('srv/new/deep/a'), 'a\n');
  linkSync(p('srv/new/deep/a'), p('srv/new/b'));
}

/** A busybox rootfs and a copy of it with every kind of change. */
async function changedPair(t: { after(fn: () => unknown): void }): Promise<{ lower: string; upper: string }> {
  const dir = await tempDir(t);
  const lower = join(dir, 'lower');
  busyboxRootfs(lower);
  const upper = join(dir, 'upper');
  sh(`cp -a ${lower} ${upper}`);
  change(upper);
  return { lower, upper };
}

/** `dist diff lower upper | dist apply copy-of-lower`, then the copy must equal upper. */
async function law(t: { after(fn: () => unknown): void }, lower: string, upper: string, extra: string[] = []): Promise<{ layer: Buffer; stderr: string }> {
  const dir = await tempDir(t, 'dist-law-');
  const copy = join(dir, 'copy');
  sh(`cp -a ${lower} ${copy}`);
  const d = await spawnDist(['diff', ...extra, lower, upper]);
  assert.equal(d.status, 0, d.stderr);
  const a = await spawnDist(['apply', copy], { input: d.stdoutBytes });
  assert.equal(a.status, 0, a.stderr);
  assert.deepEqual(treeDifferences(lawTree(upper), lawTree(copy)), []);
  return { layer: d.stdoutBytes, stderr: d.stderr };
}

/** The entries of a tar: name, type, mtime, and the PAX records. */
async function entries(layer: Buffer): Promise<{ name: string; type: string; mtime: number; pax: Record<string, string>; uname?: string; linkname?: string }[]> {
  const out: { name: string; type: string; mtime: number; pax: Record<string, string>; uname?: string; linkname?: string }[] = [];
  const x = tar.extract({ filenameEncoding: 'latin1' } as never);
  x.on('entry', (h: any, s: any, next: () => void) => {
    out.push({ name: h.name, type: h.type, mtime: h.mtime.getTime() / 1000, pax: h.pax ?? {}, uname: h.uname, linkname: h.linkname });
    s.resume();
    s.on('end', next);
  });
  await new Promise((res, rej) => {
    x.on("finish", () => res(undefined));
    x.on('error', rej);
    x.end(layer);
  });
  return out;
}

test('the diff law on a busybox rootfs after real changes: apply(lower, diff) == upper', async (t) => {
  requireTool('getfattr');
  const { lower, upper } = await changedPair(t);
  const { layer, stderr } = await law(t, lower, upper);
  assert.match(stderr, /^dist diff: \d+ added, \d+ modified, \d+ deleted; \d+ bytes; DiffID sha256:[0-9a-f]{64}\n$/);
  const es = await entries(layer);
  const names = es.map((e) => e.name);
  assert.ok(names.includes('usr/bin/.wh.setuid-tool'), 'a whiteout');
  assert.ok(names.includes('var/lib/.wh..wh..opq'), 'var/lib lost its only child: opaque');
  assert.ok(names.includes('usr/share/doc/pkg/.wh..wh..opq'), 'an opaque directory');
  assert.ok(names.includes('etc/hostname'), 'a same-size same-second edit is found by content');
  assert.ok(!names.includes('etc/shadow') && !names.includes('bin/busybox-other'));
  const link = es.find((e) => e.name === 'etc/group-link');
  assert.equal(link?.type, 'link');
  assert.equal(link?.linkname, 'etc/group');
  // Walk order decides which path of a group carries the content: srv/new/b before srv/new/deep/a.
  assert.equal(es.find((e) => e.name === 'srv/new/deep/a')?.linkname, 'srv/new/b');
  assert.equal(es.find((e) => e.name === 'bin/busybox')?.pax['SCHILY.xattr.security.capability'], Buffer.from(CAP.slice(2), 'hex').toString('latin1'));
  assert.ok(es.every((e) => !e.uname), 'no user or group names');
  // Whiteouts come before their siblings.
  assert.ok(names.indexOf('usr/share/doc/pkg/.wh..wh..opq') < names.indexOf('usr/share/doc/pkg/NEW'));
  // Unchanged paths are not in the layer.
  assert.ok(!names.includes('var/log/fifo') && !names.includes('bin/ls') && !names.includes('dev/null'));
});

test('the diff is deterministic: same bytes twice, sorted, times clamped to SOURCE_DATE_EPOCH, gzip mtime 0', async (t) => {
  const { lower, upper } = await changedPair(t);
  const env = { ...process.env, SOURCE_DATE_EPOCH: '1600000000' };
  const a = await spawnDist(['diff', '--gzip', lower, upper], { env });
  const b = await spawnDist(['diff', '--gzip', lower, upper], { env });
  assert.equal(a.status, 0, a.stderr);
  assert.ok(a.stdoutBytes.equals(b.stdoutBytes), 'same bytes');
  // gzip magic, deflate, no flags, header mtime 0 (bytes 4-7), OS 3; and so for every member.
  assert.deepEqual([...a.stdoutBytes.subarray(0, 8)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
  assert.equal(a.stdoutBytes[9], 3);
  const es = await entries(gunzipSync(a.stdoutBytes));
  assert.ok(es.every((e) => e.mtime <= 1_600_000_000 && Number.isInteger(e.mtime)));
  assert.ok(es.some((e) => e.mtime === 1_600_000_000), 'new files are clamped');
  // The plain tar's digest is the DiffID dist diff reports; zstd gives the same tar.
  const plain = await spawnDist(['diff', lower, upper], { env });
  const z = await spawnDist(['diff', '--zstd', lower, upper], { env });
  assert.equal(z.status, 0, z.stderr);
  assert.ok(gunzipSync(a.stdoutBytes).equals(plain.stdoutBytes));
  assert.ok(execFileSync('zstd', ['-dc'], { input: z.stdoutBytes, maxBuffer: 1 << 28 }).equals(plain.stdoutBytes));
  assert.equal(plain.stderr.match(/DiffID (\S+)/)![1], z.stderr.match(/DiffID (\S+)/)![1]);
});

test('dist diff of identical trees is an empty layer; a missing directory is one line', async (t) => {
  const dir = await tempDir(t);
  const lower = join(dir, 'lower');
  busyboxRootfs(lower);
  const same = await spawnDist(['diff', lower, lower]);
  assert.equal(same.status, 0);
  assert.equal(same.stdoutBytes.length, 1024);
  assert.match(same.stderr, /0 added, 0 modified, 0 deleted/);
  const bad = await spawnDist(['diff', lower, join(dir, 'nope')]);
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr, `dist diff: upper directory ${join(dir, 'nope')} does not exist\n`);
});

test('the diff law on a Debian rootfs: apt-get install in a chroot, deletions, a directory replaced by a file and back, permissions, capabilities', async (t) => {
  requireTool('chroot');
  const dir = await tempDir(t);
  const lower = debianRootfs();
  const upper = join(dir, 'upper');
  sh(`cp -a ${lower} ${upper}`);
  const deb = makeDeb(dir);
  aptInstall(upper, deb);
  assert.equal(sh(`chroot ${upper} dist-law`), 'dist-law installed\n');
  rmSync(join(upper, 'usr/share/doc'), { recursive: true });
  rmSync(join(upper, 'etc/motd'), { force: true });
  rmSync(join(upper, 'usr/share/common-licenses'), { recursive: true });
  writeFileSync(join(upper, 'usr/share/common-licenses'), 'gone\n');
  rmSync(join(upper, 'etc/hostname'), { force: true });
  mkdirSync(join(upper, 'etc/hostname'));
  chmodSync(join(upper, 'etc/shadow'), 0o600);
  execFileSync('setfattr', ['-n', 'security.capability', '-v', CAP, join(upper, 'bin/ls')]);
  await law(t, lower, upper);
});

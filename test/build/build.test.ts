import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { requireTool, sh, spawnDist } from '../helpers/cli.js';
import { lawTree, treeDifferences } from '../helpers/lawtree.js';
import { containers, lowercaseTempDir } from '../helpers/podman.js';
import { busyboxRootfs } from '../helpers/rootfs.js';
import { leftovers } from '../helpers/store.js';
import { makeTar } from '../helpers/tarfixture.js';
import { debianRootfs, makeDeb } from '../helpers/debian.js';

const EPOCH = '1700000000';

async function dist(store: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ stdout: string; stderr: string }> {
  const r = await spawnDist(['--root', store, ...args], { env: { ...process.env, ...env } });
  assert.equal(r.status, 0, `dist ${args.join(' ')}: ${r.stderr}`);
  return r;
}

/** The genoci cirros example, on busybox: a rootfs expanded from a tarball, then a run step and an entrypoint. */
function genociExample(dir: string): string {
  const rootfs = join(dir, 'busybox-rootfs');
  busyboxRootfs(rootfs);
  sh(`tar --numeric-owner -C ${rootfs} -czf ${join(dir, 'busybox.tar.gz')} .`);
  const spec = join(dir, 'busybox.yaml');
  writeFileSync(spec, `busybox:\n  base: empty\n  expand: ./busybox.tar.gz\nmodified:\n  base: busybox\n  run: |\n    echo "Hello, world" > /hw\n  entrypoint: /bin/cat /hw\n`);
  return spec;
}

function names(store: string): string[] {
  return JSON.parse(readFileSync(join(store, 'index.json'), 'utf8')).manifests.map((m: any) => m.annotations['org.opencontainers.image.ref.name']).sort();
}

test('dist build: the genoci example builds, is named as genoci names it, podman runs it, and umoci unpack equals dist unpack', async (t) => {
  requireTool('runc');
  requireTool('umoci');
  const dir = await lowercaseTempDir(t);
  const spec = genociExample(dir);
  const store = join(dir, 'store');
  const r = await dist(store, ['build', spec], { SOURCE_DATE_EPOCH: EPOCH });
  assert.match(r.stdout, /^busybox sha256:[0-9a-f]{64}\nmodified sha256:[0-9a-f]{64}\n$/);
  assert.deepEqual(names(store), ['busybox', 'busybox-2023-11-14_1', 'modified', 'modified-2023-11-14_1']);
  const c = await containers(t);
  assert.equal(c.run(['run', '--rm', '--network=none', `oci:${store}:modified`]).stdout, 'Hello, world\n');
  sh(`umoci unpack --image ${store}:modified ${join(dir, 'bundle')}`);
  await dist(store, ['unpack', 'modified', join(dir, 'ours')]);
  assert.deepEqual(treeDifferences(lawTree(join(dir, 'bundle', 'rootfs')), lawTree(join(dir, 'ours'))), []);
  // runc's mount points did not leak into the layer: the run step's layer holds /hw only.
  const manifest = JSON.parse(readFileSync(join(store, 'blobs', 'sha256', r.stdout.split('\n')[1]!.split(' ')[1]!.slice(7)), 'utf8'));
  const layer = join(store, 'blobs', 'sha256', manifest.layers[1].digest.slice(7));
  assert.equal(execFileSync('tar', ['-tzf', layer], { encoding: 'utf8' }), 'hw\n');
});

test('dist build: same digests from fresh stores with one SOURCE_DATE_EPOCH; unchanged targets reuse the step cache; a changed input rebuilds', async (t) => {
  requireTool('runc');
  const dir = await lowercaseTempDir(t);
  genociExample(dir);
  writeFileSync(join(dir, 'greeting'), 'hello\n');
  const log = join(dir, 'pre.log');
  const spec = join(dir, 'cached.yaml');
  writeFileSync(spec, `busybox:\n  base: empty\n  expand: ./busybox.tar.gz\napp:\n  base: busybox\n  pre: echo ran >> ${log}\n  copy: greeting /etc/greeting\n  cmd: [cat, /etc/greeting]\n  env: [A=1]\n  labels: {x: y}\n`);
  const a = await dist(join(dir, 'a'), ['build', spec], { SOURCE_DATE_EPOCH: EPOCH });
  const b = await dist(join(dir, 'b'), ['build', spec], { SOURCE_DATE_EPOCH: EPOCH });
  assert.equal(a.stdout, b.stdout, 'same digests');
  // Naming one target builds what it is based on too, to the same digests.
  const only = await dist(join(dir, 'c'), ['build', spec, 'app'], { SOURCE_DATE_EPOCH: EPOCH });
  assert.equal(only.stdout, a.stdout);
  assert.equal(readFileSync(log, 'utf8'), 'ran\nran\nran\n');

  const again = await dist(join(dir, 'a'), ['build', spec], { SOURCE_DATE_EPOCH: EPOCH });
  assert.equal(again.stdout, a.stdout);
  assert.match(again.stderr, /app: unchanged, reused/);
  assert.equal(readFileSync(log, 'utf8'), 'ran\nran\nran\n', 'the cached target ran nothing');
  assert.ok(names(join(dir, 'a')).includes('app-2023-11-14_2'), 'each build adds a dated name');

  writeFileSync(join(dir, 'greeting'), 'changed\n');
  const changed = await dist(join(dir, 'a'), ['build', spec], { SOURCE_DATE_EPOCH: EPOCH });
  assert.match(changed.stderr, /busybox: unchanged, reused/);
  assert.match(changed.stderr, /app: built/);
  assert.notEqual(changed.stdout, a.stdout);
  assert.equal(readFileSync(log, 'utf8'), 'ran\nran\nran\nran\n');
});

test('dist build: run steps get their own pid and network namespaces (no network unless network: host)', async (t) => {
  requireTool('runc');
  const dir = await lowercaseTempDir(t);
  genociExample(dir);
  const spec = join(dir, 'ns.yaml');
  writeFileSync(spec, `busybox:\n  base: empty\n  expand: ./busybox.tar.gz\nisolated:\n  base: busybox\n  run: ls /sys/class/net > /net; echo $$ > /pid\nhostnet:\n  base: busybox\n  network: host\n  run: ls /sys/class/net > /net\n`);
  const store = join(dir, 'store');
  await dist(store, ['build', '-q', spec]);
  for (const [target, want] of [['isolated', 'lo\n'], ['hostnet', `${readdirSync('/sys/class/net').sort().join('\n')}\n`]]) {
    const out = join(dir, target!);
    await dist(store, ['unpack', target!, out]);
    assert.equal(readFileSync(join(out, 'net'), 'utf8'), want, target);
  }
  assert.equal(readFileSync(join(dir, 'isolated', 'pid'), 'utf8'), '1\n');
});

/**
 * Builds one target from `yaml` (given the temp dir and a directory `outside` it must not touch)
 * and returns the unpacked image; asserts `outside` stayed empty.
 */
async function hostile(t: { after(fn: () => unknown): void }, tarball: Buffer | undefined, actions: (outside: string) => string): Promise<{ out: string; outside: string }> {
  requireTool('runc');
  const dir = await lowercaseTempDir(t);
  const outside = join(dir, 'outside');
  mkdirSync(outside);
  writeFileSync(join(dir, 'src.txt'), 'copied\n');
  if (tarball) writeFileSync(join(dir, 'hostile.tar'), tarball);
  const spec = join(dir, 'hostile.yaml');
  writeFileSync(spec, `hostile:\n  base: empty\n${actions(outside)}`);
  const store = join(dir, 'store');
  await dist(store, ['build', spec]);
  assert.deepEqual(readdirSync(outside), [], 'nothing written outside the rootfs');
  const out = join(dir, 'unpacked');
  await dist(store, ['unpack', 'hostile', out]);
  return { out, outside };
}

test('hostile copy: a destination that climbs out (../../etc) lands inside the rootfs', async (t) => {
  const { out } = await hostile(t, undefined, () => '  copy: src.txt ../../etc/climbed\n');
  assert.ok(!existsSync('/etc/climbed'));
  assert.equal(readFileSync(join(out, 'etc', 'climbed'), 'utf8'), 'copied\n');
});

test('hostile copy: a destination through a symlink in the rootfs that points outside stays inside', async (t) => {
  const links = (outside: string) => makeTar([{ name: 'evil', type: 'symlink', linkname: outside }, { name: 'up', type: 'symlink', linkname: '../../../../../../../..' }]);
  const dir = await lowercaseTempDir(t);
  const probe = join(dir, 'probe');
  const { out, outside } = await hostile(t, links(probe), (o) => `  expand: ./hostile.tar\n  copy:\n    - src.txt evil/through-link\n    - src.txt /up/${o}/through-up\n`);
  // The symlink's target is re-rooted in the rootfs: the copies are under <rootfs>/<outside path>.
  assert.ok(!existsSync(probe), 'nothing made at the symlink target on the host');
  assert.ok(existsSync(join(out, probe.slice(1), 'through-link')));
  assert.ok(existsSync(join(out, outside.slice(1), 'through-up')));
});

test('hostile tarball: expand entries with .., absolute names and symlink escapes stay inside the rootfs', async (t) => {
  const dir = await lowercaseTempDir(t);
  const target = join(dir, 'target');
  mkdirSync(target);
  const tarball = makeTar([
    { name: '../../escape-file', data: 'x\n' },
    { name: '/abs-file', data: 'x\n' },
    { name: 'evil', type: 'symlink', linkname: target },
    { name: 'evil/pwned', data: 'x\n' },
    { name: 'up', type: 'symlink', linkname: '../../../../../../../..' },
    { name: `up${target}/pwned-up`, data: 'x\n' },
  ]);
  const { out } = await hostile(t, tarball, () => '  expand: ./hostile.tar\n');
  assert.deepEqual(readdirSync(target), []);
  assert.ok(!existsSync('/abs-file') && !existsSync(join(dir, '..', 'escape-file')));
  for (const p of ['escape-file', 'abs-file', `${target.slice(1)}/pwned`, `${target.slice(1)}/pwned-up`]) assert.ok(existsSync(join(out, p)), `${p} is inside the rootfs`);
});

test('dist build: a bad spec is one line naming the target and the key, and builds nothing', async (t) => {
  const dir = await lowercaseTempDir(t);
  const store = join(dir, 'store');
  const cases: [string, string][] = [
    ['a:\n  base: empty\n  colour: red\n', 'target "a": colour: unknown key (known: base, expand, copy, run, install, entrypoint, cmd, env, workdir, user, labels, pre, post, network)'],
    ['a:\n  run: echo\n', 'target "a": base: missing (empty, an image in the store, or an earlier target)'],
    ['a:\n  base: nope\n  run: echo\n', 'target "a": base: no target or image named "nope" (see dist images)'],
    ['a:\n  base: empty\n  copy: onlyone\n', 'target "a": copy: expected "src dest", got "onlyone"'],
    ['a:\n  base: empty\n  install: pkg.rpm\n', 'target "a": install: expected .deb files, got "pkg.rpm"'],
    ['a:\n  base: empty\n  entrypoint: {x: 1}\n', 'target "a": entrypoint: expected a string or a list of strings'],
    ['a:\n  base: empty\n  network: bridge\n  run: echo\n', 'target "a": network: expected none or host, got "bridge"'],
    ['a:\n  base: empty\n', 'target "a": actions: a target needs at least one action'],
    ['a:\n  base: b\n  run: echo\nb:\n  base: a\n  run: echo\n', 'target "a": base: cycle a -> b -> a'],
  ];
  for (const [i, [yaml, want]] of cases.entries()) {
    const spec = join(dir, `bad-${i}.yaml`);
    writeFileSync(spec, yaml);
    const r = await spawnDist(['--root', store, 'build', spec]);
    assert.equal(r.status, 1, yaml);
    assert.equal(r.stderr, `dist build: ${spec}: ${want}\n`);
  }
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'a: [unclosed\n');
  const r = await spawnDist(['--root', store, 'build', bad]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^dist build: .*bad\.yaml: not valid YAML: [^\n]+\n$/);
  assert.deepEqual((await leftovers(store)).blobs, []);
});

test('dist build: install puts .deb packages in through the image\'s own dpkg (Debian base), and podman runs the result', async (t) => {
  requireTool('runc');
  const dir = await lowercaseTempDir(t);
  const store = join(dir, 'store');
  await dist(store, ['commit', debianRootfs(), '--base', 'empty', '--name', 'debian']);
  const deb = makeDeb(dir);
  const spec = join(dir, 'deb.yaml');
  writeFileSync(spec, `withdeb:\n  base: debian\n  install: ./${deb.split('/').pop()}\n  entrypoint: [dist-law]\n`);
  await dist(store, ['build', '-q', spec]);
  const c = await containers(t);
  assert.equal(c.run(['run', '--rm', '--network=none', `oci:${store}:withdeb`]).stdout, 'dist-law installed\n');
  const status = c.run(['run', '--rm', '--network=none', '--entrypoint', 'dpkg-query', `oci:${store}:withdeb`, '-W', '-f', '${Status}', 'dist-law']).stdout;
  assert.equal(status, 'install ok installed');
});

// bin/dist's start-up machinery: the code cache is used, and the store commands leave undici
// unloaded. Both are silent when they break (dist only gets slower), so they are tested here.
// So is the launcher itself: POSIX sh builtins only, BusyBox's sh and env included.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DIST_BIN, REPO, requireTool, spawnCapture } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

test('bin/dist loads each bundle part with a code cache V8 accepts', async () => {
  // A fresh node, flags as bin/dist has them: the cache is checked against V8's flags.
  const probe = `const { load } = require(${JSON.stringify(join(REPO, 'out', 'bundle', 'dist.cjs'))});
    const { scripts, loadPart } = load();
    loadPart('undici');
    process.stdout.write(JSON.stringify([...scripts()].map(([part, s]) => [part, s.cachedDataRejected])));`;
  const r = await spawnCapture(process.execPath, ['-e', probe]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [['main', false], ['undici', false]]);
});

test('dist path does not load the undici part; a registry request does', async (t) => {
  const dir = await tempDir(t);
  const hook = join(dir, 'files.cjs');
  const report = join(dir, 'files.txt');
  // Which files the process opened, from the launcher's reads.
  writeFileSync(hook, `const fs = require('node:fs'); const seen = []; const read = fs.readFileSync;
    fs.readFileSync = function (p, ...rest) { seen.push(String(p)); return read.call(this, p, ...rest); };
    process.on('exit', () => fs.writeFileSync(${JSON.stringify(report)}, seen.join('\\n')));`);
  const path = await spawnCapture(process.execPath, ['-r', hook, DIST_BIN, '--root', dir, 'path', 'sha256:' + 'a'.repeat(64)]);
  assert.equal(path.status, 1);
  const parts = () => readFileSync(report, 'utf8').split('\n').filter((f) => /\/out\/bundle\/(main|undici)\.cjs/.test(f)).map((f) => f.slice(f.lastIndexOf('/') + 1)).sort();
  assert.deepEqual(parts(), ['main.cjs', 'main.cjs.cache']);
  const fetch = await spawnCapture(process.execPath, ['-r', hook, DIST_BIN, 'fetch', '127.0.0.1:1/none', 'sha256:' + 'a'.repeat(64)]);
  assert.equal(fetch.status, 1);
  assert.match(fetch.stderr, /connection refused/);
  assert.deepEqual(parts(), ['main.cjs', 'main.cjs.cache', 'undici.cjs', 'undici.cjs.cache']);
});

test('dist path prints through fd 1 without making process.stdout or process.stderr; a closed pipe ends a long listing quietly', async (t) => {
  const dir = await tempDir(t);
  const hook = join(dir, 'stdio.cjs');
  const report = join(dir, 'stdio.txt');
  // Records which of process.stdout/stderr the command made (each costs ~2 ms of a ~35 ms
  // dist path: making one loads node:stream).
  writeFileSync(hook, `const fs = require('node:fs'); const made = [];
    for (const k of ['stdout', 'stderr']) {
      const d = Object.getOwnPropertyDescriptor(process, k);
      Object.defineProperty(process, k, { configurable: true, enumerable: d.enumerable, get() { if (!made.includes(k)) made.push(k); return d.get.call(this); } });
    }
    process.on('exit', () => fs.writeFileSync(${JSON.stringify(report)}, made.join(',')));`);
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  // Enough blobs that `dist list -q` writes more than a pipe holds (64 KiB).
  const hexes = Array.from({ length: 1200 }, (_, i) => createHash('sha256').update(String(i)).digest('hex'));
  for (const h of hexes) writeFileSync(join(blobs, h), '');
  const digest = `sha256:${hexes[0]}`;
  const r = await spawnCapture(process.execPath, ['-r', hook, DIST_BIN, '--root', dir, 'path', digest]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${digest} ${join(blobs, hexes[0]!)}\n`);
  assert.equal(readFileSync(report, 'utf8'), '');
  // The reader goes away after one line: no EPIPE message, exit 0 (as with process.stdout).
  const head = spawnSync('bash', ['-c', `"${DIST_BIN}" --root "${dir}" list -q | head -n 1; echo "\${PIPESTATUS[0]}"`], { encoding: 'utf8' });
  assert.equal(head.stderr, '');
  const [first, status] = head.stdout.trim().split('\n');
  assert.ok(hexes.includes(first!.slice('sha256:'.length)), first);
  assert.equal(status, '0');
});

test('bin/dist gives help, its version and usage errors (yargs inside the bundle, which reads import.meta.url)', async () => {
  const version = await spawnCapture(DIST_BIN, ['--version']);
  assert.deepEqual([version.status, version.stderr], [0, '']);
  assert.equal(version.stdout, `${JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version}\n`);
  const help = await spawnCapture(DIST_BIN, ['--help']);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^Usage: dist <command> \[options\]$/m);
  const usage = await spawnCapture(DIST_BIN, ['path', '--bogus']);
  assert.deepEqual([usage.status, usage.stdout, usage.stderr], [2, '', "dist path: Unknown argument: bogus\nRun 'dist path --help' for usage.\n"]);
});

test('bin/dist starts without node loading NODE_EXTRA_CA_CERTS, and gives it back to the environment', async () => {
  // node itself warns at start-up when it cannot load the file; bin/dist must not let it try.
  // `dist path` of an unknown digest prints a one-line error and connects nowhere.
  const env = { PATH: process.env.PATH, NODE_EXTRA_CA_CERTS: '/nonexistent/ca.pem' };
  const r = await spawnCapture(DIST_BIN, ['--root', '/nonexistent', 'path', 'sha256:' + 'a'.repeat(64)], { env });
  assert.equal(r.status, 1);
  assert.doesNotMatch(r.stderr, /Warning|extra certs/);
  assert.equal(r.stderr.split('\n').length, 2, r.stderr);
  // Nor does a plain-http fetch read it: only a TLS connection needs the extra CAs.
  const f = await spawnCapture(DIST_BIN, ['fetch', '127.0.0.1:1/none', 'latest'], { env });
  assert.equal(f.status, 1);
  assert.match(f.stderr, /^dist fetch: cannot connect to 127\.0\.0\.1:1: connection refused\n$/);

  // Through bin/dist, the bundle sees the user's environment unchanged.
  const probe = join(REPO, 'out', 'bundle', 'env-probe.cjs');
  const launcher = readFileSync(DIST_BIN, 'utf8').replace("require('../out/bundle/dist.cjs').run();", `process.stdout.write(JSON.stringify([process.env.NODE_EXTRA_CA_CERTS, process.env.DIST_NODE_EXTRA_CA_CERTS]))`);
  writeFileSync(probe, launcher, { mode: 0o755 });
  try {
    for (const value of ['/etc/ssl/some file.pem', undefined]) {
      const seen = await spawnCapture(probe, [], { env: { PATH: process.env.PATH, ...(value && { NODE_EXTRA_CA_CERTS: value }) } });
      assert.equal(seen.status, 0, seen.stderr);
      // The probe runs before the launcher restores the variable: node itself never saw it.
      assert.deepEqual(JSON.parse(seen.stdout), [null, value ?? '']);
    }
  } finally {
    rmSync(probe, { force: true });
  }
});

test('bin/dist runs where /bin/sh and /usr/bin/env are BusyBox (no env -S) and through a symlink', async (t) => {
  const busybox = requireTool('busybox');
  requireTool('unshare');
  const dir = await tempDir(t);
  // A symlink elsewhere, as `npm install -g` makes one in <prefix>/bin.
  const link = join(dir, 'dist');
  spawnSync('ln', ['-s', DIST_BIN, link]);
  const script = `mount --bind ${busybox} /usr/bin/env && mount --bind ${busybox} /bin/sh && /bin/sh --help 2>&1 | head -n 1 && ${link} --version && NODE_EXTRA_CA_CERTS=/nonexistent.pem ${link} --root ${dir}/store path sha256:${'a'.repeat(64)}; echo "status $?"`;
  const r = await spawnCapture('unshare', ['-m', 'sh', '-c', script]);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0]!, /^BusyBox v/, 'sh is BusyBox in the namespace');
  assert.equal(lines[1], JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version);
  assert.equal(lines[2], 'status 1');
  assert.equal(r.stderr, `dist path: sha256:${'a'.repeat(64)}: not found in the store\n`);
});

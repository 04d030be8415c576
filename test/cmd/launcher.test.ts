// bin/dist's start-up machinery: the code cache is used, and the bundle leaves node:http2
// unloaded. Both are silent when they break (dist only gets slower), so they are tested here.
import assert from 'node:assert/strict';
import { constants as realConstants } from 'node:http2';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { constants } from '../../lib/shims/undici-http2.js';
import { DIST_BIN, REPO, spawnCapture } from '../helpers/cli.js';
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

test('dist path and dist fetch do not load the undici part; a request with a body does', async (t) => {
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
  assert.deepEqual(parts(), ['main.cjs', 'main.cjs.cache']);
  // An identity token is exchanged by POST, which goes through undici (lib/remote/undici.ts).
  const server = createServer((req, res) => {
    if (req.method === 'POST') res.writeHead(503).end();
    else res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${req.headers.host}/token"` }).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => server.close());
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { [host]: { identitytoken: 'x' } } }));
  const post = await spawnCapture(process.execPath, ['-r', hook, DIST_BIN, 'fetch', `${host}/none`, 'latest'], { env: { ...process.env, DOCKER_CONFIG: dir } });
  assert.equal(post.status, 1);
  assert.match(post.stderr, /token server answered 503/);
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

  // Run through the #! line (as a shell would), the bundle sees the user's environment unchanged.
  const probe = `process.stdout.write(JSON.stringify([process.env.NODE_EXTRA_CA_CERTS, process.env.DIST_NODE_EXTRA_CA_CERTS]))`;
  const shebang = readFileSync(join(REPO, 'out', 'bundle', 'dist.cjs'), 'utf8').split('\n')[0]!;
  const script = join(REPO, 'out', 'bundle', 'env-probe.cjs');
  writeFileSync(script, `${shebang}\nrequire(${JSON.stringify(join(REPO, 'out', 'bundle', 'dist.cjs'))});\n${probe}\n`, { mode: 0o755 });
  try {
    for (const value of ['/etc/ssl/some file.pem', undefined]) {
      const seen = await spawnCapture(script, [], { env: { PATH: process.env.PATH, ...(value && { NODE_EXTRA_CA_CERTS: value }) } });
      assert.equal(seen.status, 0, seen.stderr);
      assert.deepEqual(JSON.parse(seen.stdout), [value ?? null, null]);
    }
  } finally {
    rmSync(script, { force: true });
  }
});

test('dist fetch, ingest and pull never load node:http2', async (t) => {
  const dir = await tempDir(t);
  // -r runs before bin/dist and reports, at exit, which built-in modules were loaded.
  const hook = join(dir, 'modules.cjs');
  const report = join(dir, 'modules.txt');
  writeFileSync(hook, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(report)}, process.moduleLoadList.join('\\n')));`);
  // A fetch that fails at connect still loads the whole HTTP client.
  const r = await spawnCapture(process.execPath, ['-r', hook, DIST_BIN, 'fetch', '127.0.0.1:1/none', 'sha256:' + 'a'.repeat(64)]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^dist fetch: .*127\.0\.0\.1:1.*\n$/);
  const loaded = readFileSync(report, 'utf8').split('\n');
  assert.ok(loaded.includes('NativeModule net'), 'the HTTP client was loaded');
  assert.ok(!loaded.includes('NativeModule http2'), 'node:http2 was loaded');
});

test('the node:http2 stand-in has every constant undici reads, with the real values', () => {
  const source = readFileSync(join(REPO, 'node_modules', 'undici', 'lib', 'dispatcher', 'client-h2.js'), 'utf8');
  const block = /const \{\s*constants: \{([^}]*)\}\s*\} = http2/.exec(source);
  assert.ok(block, "undici's client-h2.js no longer reads http2.constants the way the stand-in expects");
  const names = block[1]!.split(',').map((s) => s.trim()).filter(Boolean);
  assert.ok(names.length >= 5);
  for (const name of names) {
    assert.equal((constants as Record<string, unknown>)[name], (realConstants as Record<string, unknown>)[name], name);
  }
  // The only other use of the module: http2.connect, which the stand-in forwards.
  const uses = [...source.matchAll(/\bhttp2\.(\w+)/g)].map((m) => m[1]);
  assert.deepEqual([...new Set(uses)].sort(), ['connect']);
});

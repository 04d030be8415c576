import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { DIST_BIN, requireTool, runCli, sh, spawnDist } from '../helpers/cli.js';
import { spawn, spawnSync } from 'node:child_process';
import { FaultProxy } from '../helpers/faultproxy.js';
import { buildImage, type BuiltImage } from '../helpers/image.js';
import { IDENTITY_TOKEN, fixtureDir, pushFromLayout, pushTwoPlatformIndex, startRegistry, type Registry } from '../helpers/registry.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';
import { RegistryClient } from '../../lib/remote/client.js';
import { listTags } from '../../lib/remote/fetcher.js';
import { parseLocator } from '../../lib/remote/locator.js';

const BIG = 4 << 20;

async function setup(t: any, auth?: 'htpasswd' | 'token'): Promise<{ reg: Registry; img: BuiltImage; src: string; big: string; bigBytes: Buffer }> {
  const reg = await startRegistry(t, { auth });
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, 'v1', [{ files: { 'big.bin': randomBytes(BIG) }, compression: 'none' }, { 'small.txt': 'small\n' }]);
  await pushFromLayout(reg, src, 'team/app', 'v1', img.manifest, img.mediaType);
  const big = img.layers[0]!;
  return { reg, img, src, big, bigBytes: await readFile(join(src, 'blobs', 'sha256', big.slice(7))) };
}

/** A docker config.json directory with credentials for `host`. */
async function dockerConfig(t: any, host: string, user: string, password: string): Promise<string> {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } }));
  return dir;
}

test('fetch: a tag gives the manifest bytes exactly; a digest gives the blob, verified', async (t) => {
  const { reg, img, src, big, bigBytes } = await setup(t);
  const m = await runCli(['fetch', `${reg.host}/team/app`, 'v1']);
  assert.equal(m.status, 0, m.stderr);
  assert.ok(m.stdoutBytes.equals(img.manifestBytes));
  const byDigest = await runCli(['fetch', `${reg.host}/team/app`, img.manifest]);
  assert.ok(byDigest.stdoutBytes.equals(img.manifestBytes), 'a manifest digest falls back to the manifests endpoint');
  const b = await runCli(['fetch', `${reg.host}/team/app`, big]);
  assert.equal(b.status, 0, b.stderr);
  assert.ok(b.stdoutBytes.equals(bigBytes));
  const cfg = await runCli(['fetch', `${reg.host}/team/app`, img.config]);
  assert.ok(cfg.stdoutBytes.equals(await readFile(join(src, 'blobs', 'sha256', img.config.slice(7)))));
});

test('fetch --offset streams from the byte asked (HTTP Range)', async (t) => {
  const { reg, big, bigBytes } = await setup(t);
  const r = await runCli(['fetch', '--offset', '1000000', `${reg.host}/team/app`, big]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(bigBytes.subarray(1_000_000)));
});

test('resolve prints the descriptor; tags lists every tag across pages', async (t) => {
  const { reg, img, src } = await setup(t);
  for (const tag of ['v2', 'v3', 'v4', 'latest']) await pushFromLayout(reg, src, 'team/app', tag, img.manifest, img.mediaType);
  const r = await runCli(['resolve', `${reg.host}/team/app:v1`]);
  assert.deepEqual(JSON.parse(r.stdout), { mediaType: img.mediaType, digest: img.manifest, size: img.manifestSize });
  const tags = await runCli(['tags', `${reg.host}/team/app`]);
  assert.deepEqual(tags.stdout.trim().split('\n').sort(), ['latest', 'v1', 'v2', 'v3', 'v4']);
  const client = new RegistryClient();
  t.after(() => client.close());
  const paged: string[] = [];
  for await (const tag of listTags(client, parseLocator(`${reg.host}/team/app`), 2)) paged.push(tag);
  assert.deepEqual(paged.sort(), ['latest', 'v1', 'v2', 'v3', 'v4']);
});

test('fetch: an index with two platforms, and each platform manifest by digest', async (t) => {
  const reg = await startRegistry(t);
  const { arm, index } = await pushTwoPlatformIndex(t, reg, 'team/multi', 'multi');
  const r = await runCli(['fetch', `${reg.host}/team/multi`, 'multi']);
  assert.ok(r.stdoutBytes.equals(index.bytes));
  const res = await runCli(['resolve', `${reg.host}/team/multi:multi`]);
  assert.equal(JSON.parse(res.stdout).mediaType, 'application/vnd.oci.image.index.v1+json');
  const m = await runCli(['fetch', `${reg.host}/team/multi`, arm.manifest]);
  assert.ok(m.stdoutBytes.equals(arm.manifestBytes));
});

for (const auth of ['htpasswd', 'token'] as const) {
  test(`auth (${auth}): credentials from a docker config.json; a wrong password is one line, exit 1, no secret printed`, async (t) => {
    const { reg, big, bigBytes } = await setup(t, auth);
    const good = await dockerConfig(t, reg.host, reg.user!, reg.password!);
    const ok = await runCli(['fetch', `${reg.host}/team/app`, big], { env: { DOCKER_CONFIG: good } });
    assert.equal(ok.status, 0, ok.stderr);
    assert.ok(ok.stdoutBytes.equals(bigBytes));
    assert.equal(ok.stderr, '');

    const secret = 'wrong-secret-do-not-print';
    const bad = await dockerConfig(t, reg.host, reg.user!, secret);
    for (const argv of [['fetch', `${reg.host}/team/app`, 'v1'], ['resolve', `${reg.host}/team/app:v1`], ['tags', `${reg.host}/team/app`]]) {
      const r = await runCli(argv, { env: { DOCKER_CONFIG: bad, DIST_DEBUG: '' } });
      assert.equal(r.status, 1);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /authentication failed/);
      const b64 = Buffer.from(`${reg.user}:${secret}`).toString('base64');
      for (const s of [secret, b64]) assert.ok(!r.stderr.includes(s), 'the secret is not printed');
    }
    const none = await runCli(['fetch', `${reg.host}/team/app`, 'v1'], { env: { HOME: await tempDir(t) } });
    assert.equal(none.status, 1);
    assert.match(none.stderr, /no credentials found for this registry/);
  });
}

test('auth (token): an identity token from config.json is exchanged by POST for a bearer token; a bad one is one line', async (t) => {
  const { reg, big, bigBytes } = await setup(t, 'token');
  const cfg = await tempDir(t);
  const config = (token: string) => writeFile(join(cfg, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: '', identitytoken: token } } }));
  await config(IDENTITY_TOKEN);
  // A real process: the identity token goes by POST through the same undici transport.
  const ok = await spawnDist(['fetch', `${reg.host}/team/app`, big], { env: { ...process.env, DOCKER_CONFIG: cfg } });
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stderr, '');
  assert.ok(ok.stdoutBytes.equals(bigBytes));
  assert.equal(reg.tokens!.posts, 1);

  await config('not-the-token');
  const bad = await spawnDist(['fetch', `${reg.host}/team/app`, 'v1'], { env: { ...process.env, DOCKER_CONFIG: cfg } });
  assert.equal(bad.status, 1);
  assert.equal(bad.stdout, '');
  assert.equal(bad.stderr, `dist fetch: ${reg.host}/team/app: authentication failed: token server answered 401: UNAUTHORIZED: invalid refresh token\n`);
  assert.ok(!bad.stderr.includes('not-the-token'));
});

test('auth: $REGISTRY_AUTH_FILE and a docker-credential helper both supply credentials', async (t) => {
  const { reg } = await setup(t, 'token');
  const authFile = join(await tempDir(t), 'auth.json');
  await writeFile(authFile, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${reg.user}:${reg.password}`).toString('base64') } } }));
  const a = await runCli(['resolve', `${reg.host}/team/app:v1`], { env: { REGISTRY_AUTH_FILE: authFile, HOME: '/nonexistent' } });
  assert.equal(a.status, 0, a.stderr);

  const bin = await tempDir(t);
  const helper = join(bin, 'docker-credential-disttest');
  await writeFile(helper, `#!/bin/sh\nread host\n[ "$host" = "${reg.host}" ] || { echo "credentials not found in native keychain"; exit 1; }\nprintf '{"ServerURL":"%s","Username":"${reg.user}","Secret":"${reg.password}"}' "$host"\n`);
  await chmod(helper, 0o755);
  const cfg = await tempDir(t);
  await writeFile(join(cfg, 'config.json'), JSON.stringify({ credHelpers: { [reg.host]: 'disttest' } }));
  const h = await runCli(['resolve', `${reg.host}/team/app:v1`], { env: { DOCKER_CONFIG: cfg, PATH: `${bin}:${process.env.PATH}` } });
  assert.equal(h.status, 0, h.stderr);
  await writeFile(join(cfg, 'config.json'), JSON.stringify({ credsStore: 'disttest' }));
  const s = await runCli(['resolve', `${reg.host}/team/app:v1`], { env: { DOCKER_CONFIG: cfg, PATH: `${bin}:${process.env.PATH}` } });
  assert.equal(s.status, 0, s.stderr);
});

test('faults: 429 with Retry-After is honoured, then the fetch succeeds', async (t) => {
  const { reg, img } = await setup(t);
  const proxy = await new FaultProxy(reg.url).start(t);
  proxy.rules.push({ method: 'GET', path: /\/manifests\/v1$/, fault: { status: 429, retryAfter: '1' }, times: 1 });
  const started = Date.now();
  const r = await runCli(['fetch', `${proxy.host}/team/app`, 'v1']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(img.manifestBytes));
  assert.ok(Date.now() - started >= 950, 'waited for Retry-After');
  assert.deepEqual(proxy.seen.filter((s) => /manifests/.test(s.url)).map((s) => s.status), [429, 200]);
});

test('faults: 503s are retried with backoff; a registry that stays down fails with one line', async (t) => {
  const { reg, big, bigBytes } = await setup(t);
  const proxy = await new FaultProxy(reg.url).start(t);
  proxy.rules.push({ path: /\/blobs\//, fault: { status: 503 }, times: 2 });
  const r = await runCli(['fetch', `${proxy.host}/team/app`, big]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(bigBytes));
  assert.deepEqual(proxy.seen.map((s) => s.status), [503, 503, 200]);

  proxy.rules.push({ path: /\/manifests\//, fault: { status: 503, retryAfter: '120' } });
  const down = await runCli(['fetch', `${proxy.host}/team/app`, 'v1']);
  assert.equal(down.status, 1);
  assert.match(down.stderr, /^dist fetch: .*503 UNAVAILABLE: injected fault \(retry would exceed 60s\)\n$/);
});

test('faults: a connection reset mid-body resumes with Range instead of starting over', async (t) => {
  const { reg, big, bigBytes } = await setup(t);
  const proxy = await new FaultProxy(reg.url).start(t);
  proxy.rules.push({ path: /\/blobs\//, fault: { resetAfter: 1_500_000 }, times: 1 });
  const r = await runCli(['fetch', `${proxy.host}/team/app`, big]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(bigBytes));
  const gets = proxy.seen.filter((s) => /\/blobs\//.test(s.url));
  assert.equal(gets.length, 2);
  assert.equal(gets[0]!.bytes, 1_500_000);
  // A TCP reset drops what was in flight, so the client resumes from what it actually got.
  const from = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
  assert.ok(from > 0 && from <= 1_500_000, `resumed from ${gets[1]!.range}`);
  assert.equal(gets[1]!.status, 206);
  assert.equal(gets[1]!.bytes, bigBytes.length - from, 'the resume carried only the missing bytes');
  assert.ok(proxy.bytesFor(/\/blobs\//) < bigBytes.length + 1_500_000);
  // bin/dist writes lent chunks straight to fd 1 (cmd/fetch.ts): the same across a resume.
  proxy.rules.push({ path: /\/blobs\//, fault: { resetAfter: 1_500_000 }, times: 1 });
  const p = await spawnDist(['fetch', `${proxy.host}/team/app`, big]);
  assert.equal(p.status, 0, p.stderr);
  assert.ok(p.stdoutBytes.equals(bigBytes));
  assert.equal(proxy.seen.filter((s) => /\/blobs\//.test(s.url)).length, 4);
});

test('faults: a server that ignores Range has the bytes already held skipped', async (t) => {
  const { reg, big, bigBytes } = await setup(t);
  const proxy = await new FaultProxy(reg.url).start(t);
  proxy.rules.push({ path: /\/blobs\//, fault: { resetAfter: 1_000_000 }, times: 1 });
  proxy.rules.push({ path: /\/blobs\//, fault: { ignoreRange: true } });
  const r = await runCli(['fetch', `${proxy.host}/team/app`, big]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(bigBytes));
  const gets = proxy.seen.filter((s) => /\/blobs\//.test(s.url));
  assert.deepEqual(gets.map((g) => g.status), [200, 200]);
  const from = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
  assert.ok(from > 0 && from <= 1_000_000, `asked to resume from ${gets[1]!.range}; the server sent everything again`);
  // --offset against the same server: still the right bytes.
  const off = await runCli(['fetch', '--offset', '3000000', `${proxy.host}/team/app`, big]);
  assert.ok(off.stdoutBytes.equals(bigBytes.subarray(3_000_000)));
  // And through bin/dist's fd 1 path.
  proxy.rules.unshift({ path: /\/blobs\//, fault: { resetAfter: 1_000_000 }, times: 1 });
  const p = await spawnDist(['fetch', `${proxy.host}/team/app`, big]);
  assert.equal(p.status, 0, p.stderr);
  assert.ok(p.stdoutBytes.equals(bigBytes));
  const poff = await spawnDist(['fetch', '--offset', '3000000', `${proxy.host}/team/app`, big]);
  assert.ok(poff.stdoutBytes.equals(bigBytes.subarray(3_000_000)));
});

test('faults: wrong bytes fail the fetch naming the digest; fetch | ingest commits nothing', async (t) => {
  const { reg, big } = await setup(t);
  const proxy = await new FaultProxy(reg.url).start(t);
  proxy.rules.push({ path: /\/blobs\//, fault: { corrupt: true } });
  const r = await runCli(['fetch', `${proxy.host}/team/app`, big]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`^dist fetch: ${big}: digest mismatch: .*do not trust the output\\n$`));
  const root = join(await tempDir(t), 'store');
  const ingest = await runCli(['ingest', '--expected-digest', big, '--expected-size', String(r.stdoutBytes.length), 'x'], { root, stdin: r.stdoutBytes });
  assert.equal(ingest.status, 1);
  assert.match(ingest.stderr, new RegExp(`^dist ingest: ${big}: digest mismatch`));
  assert.deepEqual(await leftovers(root), { blobs: [], ingest: [] });
});

test('faults: a redirect to another host does not carry the Authorization header', async (t) => {
  const { reg, big, bigBytes } = await setup(t);
  // The "object storage": a different host name (localhost vs 127.0.0.1), recording headers.
  const storage = await new FaultProxy(reg.url, 'localhost').start(t);
  const front = await new FaultProxy(reg.url).start(t);
  front.rules.push({ path: /./, fault: { requireBasic: 'alice:s3cret' } });
  front.rules.push({ method: 'GET', path: /\/blobs\//, fault: { redirectTo: storage.url } });
  const cfg = await dockerConfig(t, front.host, 'alice', 's3cret');
  const r = await runCli(['fetch', `${front.host}/team/app`, big], { env: { DOCKER_CONFIG: cfg } });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(bigBytes));
  assert.ok(front.seen.some((s) => s.status === 307 && s.authorization?.startsWith('Basic ')), 'the registry got credentials');
  assert.equal(storage.seen.length, 1);
  assert.equal(storage.seen[0]!.authorization, undefined, 'object storage did not');
});

test('bad input: each gives one line on stderr and a non-zero exit', async (t) => {
  const { reg } = await setup(t);
  const proxy = await new FaultProxy(reg.url).start(t);
  proxy.rules.push({ path: /\/manifests\/notjson$/, fault: { respond: { status: 200, body: '<html>oops</html>', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } } } });
  proxy.rules.push({ path: /\/manifests\/huge$/, fault: { respond: { status: 200, body: Buffer.alloc(5 << 20, 32), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } } } });
  const cases: [string[], RegExp][] = [
    [['fetch', 'registry.invalid/team/app', 'v1'], /^dist fetch: cannot resolve host registry\.invalid$/],
    [['fetch', `${reg.host}/Team/App`, 'v1'], /^dist fetch: invalid repository "Team\/App"/],
    [['fetch', `${reg.host}/team/app`, 'bad tag!'], /^dist fetch: invalid object "bad tag!"/],
    [['fetch', `${reg.host}/team/app`, 'sha256:../../x'], /^dist fetch: invalid digest/],
    [['fetch', `${reg.host}/team/app`, 'v1', 'accept:json'], /^dist fetch: invalid hint "accept:json"/],
    [['fetch', `${reg.host}/team/app`, 'nosuchtag'], /^dist fetch: .*team\/app:nosuchtag: manifest not found$/],
    [['fetch', `${reg.host}/team/nosuchrepo`, `sha256:${'0'.repeat(64)}`], /^dist fetch: .*manifest not found$/],
    [['fetch', `${proxy.host}/team/app`, 'notjson'], /^dist fetch: .*team\/app:notjson: manifest is not valid JSON$/],
    [['fetch', `${proxy.host}/team/app`, 'huge'], /^dist fetch: .*team\/app:huge: manifest of 5242880 bytes is over the 4 MiB limit$/],
    [['resolve', `${reg.host}/team/app:nosuchtag`], /^dist resolve: .*manifest not found$/],
    [['tags', `${reg.host}/team/nosuchrepo`], /^dist tags: .*(repository not found|NAME_UNKNOWN)/],
    [['fetch', '127.0.0.1:1/team/app', 'v1'], /^dist fetch: cannot connect to 127\.0\.0\.1:1: connection refused$/],
  ];
  for (const [argv, re] of cases) {
    const r = await runCli(argv);
    assert.notEqual(r.status, 0, argv.join(' '));
    assert.equal(r.stdout, '', argv.join(' '));
    const first = r.stderr.split('\n')[0]!;
    assert.match(first, re, argv.join(' '));
    assert.ok(r.stderr.split('\n').filter(Boolean).length <= 2, r.stderr);
  }
});

test('fetch: a reader that goes away (| head) ends dist fetch quietly, exit 0', async (t) => {
  const { reg, big, bigBytes } = await setup(t);
  const r = spawnSync('bash', ['-c', `"${DIST_BIN}" fetch ${reg.host}/team/app ${big} | head -c 1000 | wc -c; echo "\${PIPESTATUS[0]}"`], { encoding: 'utf8' });
  assert.equal(r.stderr, '');
  assert.deepEqual(r.stdout.trim().split(/\s+/), ['1000', '0']);
  // And the whole blob, through a pipe, byte for byte.
  const whole = spawnSync('bash', ['-o', 'pipefail', '-c', `"${DIST_BIN}" fetch ${reg.host}/team/app ${big} | cat`], { maxBuffer: 1 << 26 });
  assert.equal(whole.status, 0, String(whole.stderr));
  assert.ok(Buffer.from(whole.stdout).equals(bigBytes));
});

test('fetch: stdout stays a blocking descriptor, so a full pipe makes dist fetch wait in write(2)', async (t) => {
  // Node sets fd 1 non-blocking once process.stdout exists; dist fetch of a blob writes to fd 1
  // itself (cmd/fetch.ts) and must not create it, or each full pipe costs a 1 ms sleep.
  const { reg, big, bigBytes } = await setup(t);
  const child = spawn(DIST_BIN, ['fetch', `${reg.host}/team/app`, big], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  const chunks: Buffer[] = [];
  child.stdout.pause();
  // The 4 MiB blob overfills the pipe while nobody reads: fetch is then blocked writing.
  let flags = '';
  for (let i = 0; i < 100 && !flags; i++) {
    await delay(50);
    const info = await readFile(`/proc/${child.pid}/fdinfo/1`, 'utf8').catch(() => '');
    if (info) flags = /^flags:\s+(\d+)/m.exec(info)![1]!;
  }
  assert.ok(flags, 'read the flags of dist fetch\'s fd 1');
  assert.equal(parseInt(flags, 8) & 0o4000, 0, `O_NONBLOCK is set on fd 1 (flags ${flags})`);
  child.stdout.on('data', (c) => chunks.push(c));
  child.stdout.resume();
  const status = await new Promise((r) => child.on('close', r));
  assert.equal(status, 0);
  assert.ok(Buffer.concat(chunks).equals(bigBytes));
});

test('fetch: a blob of 8 MiB or more grows the pipe it is written into to 1 MiB; a small one leaves it at 64 KiB', async (t) => {
  requireTool('perl');
  const reg = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, '1', [{ files: { 'big.bin': randomBytes(9 << 20) }, compression: 'none' }, { 'small.txt': 'small\n' }]);
  await pushFromLayout(reg, src, 'team/wide', '1', img.manifest, img.mediaType);
  // The reader prints the pipe's size (F_GETPIPE_SZ) once it has read everything, and the count.
  const reader = `perl -e 'my $n = 0; while (my $r = sysread(STDIN, my $b, 1 << 20)) { $n += $r } print fcntl(STDIN, 1032, 0), " $n\\n"'`;
  const through = (digest: string) => sh(`"${DIST_BIN}" fetch ${reg.host}/team/wide ${digest} | ${reader}`).trim().split(' ').map(Number);
  assert.deepEqual(through(img.layers[0]!), [1 << 20, img.layerSizes[0]]);
  assert.deepEqual(through(img.layers[1]!), [64 << 10, img.layerSizes[1]]);
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, chmodSync, existsSync, rmSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { DIST_BIN, requireTool, runCli, sh, spawnDist } from '../helpers/cli.js';
import { FaultProxy, type Seen } from '../helpers/faultproxy.js';
import { buildImage, type BuiltImage } from '../helpers/image.js';
import { fixtureDir, pushFromLayout, pushTwoPlatformIndex, startRegistry, type Registry } from '../helpers/registry.js';
import { describeTree } from '../helpers/rootfs.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';
import { Lease } from '../../lib/content/lease.js';
import { openStore } from '../../lib/content/store.js';

const LAYER = 2 << 20;

async function imageRegistry(t: any, zstd = true): Promise<{ reg: Registry; img: BuiltImage; src: string }> {
  const reg = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, '1', [
    { files: { 'bin/tool': randomBytes(LAYER), 'etc/os-release': 'ID=dist\n', 'usr/lib/': null } },
    // umoci 0.4.7 (Debian's) cannot read zstd layers, so interop images leave them out.
    { files: { 'data/blob': randomBytes(LAYER) }, compression: zstd ? 'zstd' : 'gzip' },
    { files: { 'etc/os-release': 'ID=dist-2\n', 'etc/.wh.gone': '', 'app/link': { symlink: '/bin/tool' } }, compression: 'none' },
  ]);
  await pushFromLayout(reg, src, 'team/app', '1', img.manifest, img.mediaType);
  return { reg, img, src };
}

const allBlobs = (img: BuiltImage) => [img.manifest, img.config, ...img.layers].sort();

test('pull: a multi-layer image lands in the store, named in index.json; dist list shows the name', async (t) => {
  const { reg, img } = await imageRegistry(t);
  const root = join(await tempDir(t), 'store');
  const r = await runCli(['pull', `${reg.host}/team/app:1`], { root });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${img.manifest}\n`);
  assert.equal(r.stderr, '', 'silent when not a terminal');
  assert.deepEqual(await leftovers(root), { blobs: allBlobs(img), ingest: [] });
  const index = JSON.parse(readFileSync(join(root, 'index.json'), 'utf8'));
  assert.deepEqual(index.manifests.map((m: any) => [m.digest, m.annotations['org.opencontainers.image.ref.name']]), [[img.manifest, `${reg.host}/team/app:1`]]);
  const list = (await runCli(['list', '--json'], { root })).stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(list.every((b) => b.usedBy.includes(`${reg.host}/team/app:1`)));
  const images = await runCli(['images'], { root });
  assert.match(images.stdout, new RegExp(`^NAME\tDIGEST\tTYPE\tSIZE\n${reg.host}/team/app:1\t${img.manifest}\toci-manifest\t`));
});

test('pull: --json events; a first pull GETs the tag at once, a second one only HEADs it (counted at the proxy)', async (t) => {
  const { reg, img } = await imageRegistry(t);
  const proxy = await new FaultProxy(reg.url).start(t);
  const root = join(await tempDir(t), 'store');
  const first = await runCli(['pull', '--json', `${proxy.host}/team/app:1`], { root });
  const events = first.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(events[0].event, 'resolved');
  assert.deepEqual(events.at(-1), { event: 'done', name: `${proxy.host}/team/app:1`, digest: img.manifest, blobs: 5, fetched: events.at(-1).fetched, existing: 0 });
  assert.deepEqual(
    proxy.seen.map((s) => `${s.method} ${s.url.replace(/sha256:.*/, 'sha256:…')}`).sort(),
    ['GET /v2/team/app/blobs/sha256:…', 'GET /v2/team/app/blobs/sha256:…', 'GET /v2/team/app/blobs/sha256:…', 'GET /v2/team/app/blobs/sha256:…', 'GET /v2/team/app/manifests/1'],
    'the manifest by its tag (no HEAD first), the config and three layers',
  );
  proxy.seen = [];
  const second = await runCli(['pull', `${proxy.host}/team/app:1`], { root });
  assert.equal(second.status, 0, second.stderr);
  assert.deepEqual(proxy.seen.map((s) => [s.method, s.bytes]), [['HEAD', 0]], 'only the tag was resolved');
  proxy.seen = [];
  const byDigest = await runCli(['pull', `${proxy.host}/team/app@${img.manifest}`], { root });
  assert.equal(byDigest.status, 0, byDigest.stderr);
  assert.deepEqual(proxy.seen, [], 'a digest already held needs no request at all');
  const fresh = join(await tempDir(t), 'store');
  assert.equal((await runCli(['pull', `${proxy.host}/team/app@${img.manifest}`], { root: fresh })).status, 0);
  const seen: Seen[] = proxy.seen; // (the assertion above narrowed proxy.seen to [])
  assert.deepEqual(seen.slice(0, 1).map((s) => `${s.method} ${s.url}`), [`GET /v2/team/app/manifests/${img.manifest}`], 'a digest not held: GET at once');
  assert.ok(!seen.some((s) => s.method === 'HEAD'));
});

test('pull: a two-platform index picks the right manifest and fetches nothing of the other', async (t) => {
  const reg = await startRegistry(t);
  const { amd, arm, index } = await pushTwoPlatformIndex(t, reg, 'team/multi', '2');
  const proxy = await new FaultProxy(reg.url).start(t);
  const root = join(await tempDir(t), 'store');
  const r = await runCli(['pull', '--platform', 'linux/arm64', `${proxy.host}/team/multi:2`], { root });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${arm.manifest}\n`);
  assert.deepEqual(await leftovers(root), { blobs: [index.digest, ...allBlobs(arm)].sort(), ingest: [] });
  for (const d of allBlobs(amd)) assert.ok(!proxy.seen.some((s) => s.url.includes(d)), `nothing of amd64 was requested (${d})`);
  const unpacked = join(await tempDir(t), 'rootfs');
  assert.equal((await runCli(['unpack', `${proxy.host}/team/multi:2`, unpacked], { root })).status, 0);
  assert.equal(readFileSync(join(unpacked, 'arch'), 'utf8'), 'arm64\n');

  const all = join(await tempDir(t), 'store2');
  const both = await runCli(['pull', '--all-platforms', `${proxy.host}/team/multi:2`], { root: all });
  assert.equal(both.stdout, `${index.digest}\n`);
  assert.deepEqual((await leftovers(all)).blobs, [index.digest, ...allBlobs(amd), ...allBlobs(arm)].sort());
  const none = await runCli(['pull', '--platform', 'linux/s390x', `${proxy.host}/team/multi:2`], { root: all });
  assert.equal(none.status, 1);
  assert.equal(none.stderr, 'dist pull: no manifest for platform linux/s390x (the index has: linux/amd64, linux/arm64/v8)\n');
});

test('pull: two concurrent pulls of one image both succeed, with one copy of each blob', async (t) => {
  const { reg, img } = await imageRegistry(t);
  const root = join(await tempDir(t), 'store');
  const env = { ...process.env, DIST_ROOT: root };
  const [a, b] = await Promise.all([spawnDist(['pull', `${reg.host}/team/app:1`], { env }), spawnDist(['pull', `${reg.host}/team/app:1`], { env })]);
  assert.deepEqual([a.status, a.stderr, b.status, b.stderr], [0, '', 0, '']);
  assert.deepEqual(await leftovers(root), { blobs: allBlobs(img), ingest: [] });
  assert.equal(sh(`umoci ls --layout ${root}`), `${reg.host}/team/app:1\n`);
});

test('pull: after kill -9 mid-pull, pulling again resumes with Range (bytes transferred < total)', async (t) => {
  const { reg, img } = await imageRegistry(t);
  const proxy = await new FaultProxy(reg.url).start(t);
  const big = img.layers[0]!;
  const bigSize = img.layerSizes[0]!;
  proxy.rules.push({ path: new RegExp(`/blobs/${big}`), fault: { stallAfter: 1_000_000 } });
  const root = join(await tempDir(t), 'store');
  const child = spawn(DIST_BIN, ['pull', `${proxy.host}/team/app:1`], { env: { ...process.env, DIST_ROOT: root }, stdio: 'ignore' });
  for (let i = 0; i < 200 && proxy.bytesFor(new RegExp(big)) < 1_000_000; i++) await delay(50);
  await delay(300); // let the writer flush what it received
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await exited;
  const held = JSON.parse((await runCli(['active', '--json'], { root })).stdout.trim().split('\n').find((l) => l.includes(big))!);
  assert.ok(held.size > 0 && held.size <= 1_000_000, `held ${held.size}`);

  proxy.rules = [];
  proxy.seen = [];
  const again = await runCli(['pull', `${proxy.host}/team/app:1`], { root });
  assert.equal(again.status, 0, again.stderr);
  const resumed = proxy.seen.filter((s) => s.url.includes(big));
  assert.deepEqual(resumed.map((s) => s.range), [`bytes=${held.size}-`]);
  assert.equal(resumed[0]!.bytes, bigSize - held.size, 'only the missing bytes crossed the wire');
  assert.deepEqual(await leftovers(root), { blobs: allBlobs(img), ingest: [] });
});

test('interop: skopeo and umoci read the pulled image from the store; dist unpack equals umoci unpack', async (t) => {
  requireTool('skopeo');
  requireTool('umoci');
  const { reg } = await imageRegistry(t, false);
  const dir = await tempDir(t);
  const root = join(dir, 'store');
  const name = `${reg.host}/team/app:1`;
  assert.equal((await runCli(['pull', name], { root })).status, 0);
  sh(`skopeo copy --quiet oci:${root}:${name} oci:${join(dir, 'copy')}:copied`);
  assert.equal(sh(`umoci ls --layout ${join(dir, 'copy')}`), 'copied\n');
  sh(`umoci unpack --image ${root}:${name} ${join(dir, 'bundle')}`);
  const u = await runCli(['unpack', name, join(dir, 'rootfs')], { root });
  assert.equal(u.status, 0, u.stderr);
  assert.match(u.stdout, /^sha256:[a-f0-9]{64}\n$/);
  assert.deepEqual(describeTree(join(dir, 'rootfs')), describeTree(join(dir, 'bundle', 'rootfs')));
});

test('unpack: prints the ChainID; a DiffID that does not match the config is one line, exit 1', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'store');
  const { chainId } = await import('../../lib/image/identity.js');
  const img = await buildImage(root, 'good', [{ a: '1' }, { b: '2' }]);
  const ok = await runCli(['unpack', 'good', join(dir, 'r1')], { root });
  assert.deepEqual([ok.status, ok.stdout], [0, `${chainId(img.diffIds)}\n`]);
  // An image whose config lies about the second layer.
  const config = JSON.parse(readFileSync(join(root, 'blobs', 'sha256', img.config.slice(7)), 'utf8'));
  config.rootfs.diff_ids[1] = `sha256:${'0'.repeat(64)}`;
  const { createHash } = await import('node:crypto');
  const cfgBytes = Buffer.from(JSON.stringify(config));
  const cfgDigest = `sha256:${createHash('sha256').update(cfgBytes).digest('hex')}`;
  writeFileSync(join(root, 'blobs', 'sha256', cfgDigest.slice(7)), cfgBytes);
  const manifest = JSON.parse(img.manifestBytes.toString());
  manifest.config = { ...manifest.config, digest: cfgDigest, size: cfgBytes.length };
  const mBytes = Buffer.from(JSON.stringify(manifest));
  const mDigest = `sha256:${createHash('sha256').update(mBytes).digest('hex')}`;
  writeFileSync(join(root, 'blobs', 'sha256', mDigest.slice(7)), mBytes);
  const bad = await runCli(['unpack', mDigest, join(dir, 'r2')], { root });
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr, `dist unpack: layer 1 ${img.layers[1]}: DiffID ${img.diffIds[1]} does not match the config's sha256:${'0'.repeat(64)}\n`);
  const missing = await runCli(['unpack', 'nosuch', join(dir, 'r3')], { root });
  assert.equal(missing.stderr, 'dist unpack: no image named "nosuch" in the store (see dist images)\n');
});

test('gc: unreachable blobs go, reachable ones stay (re-verified), active ingests and leases are kept', async (t) => {
  const { reg, img } = await imageRegistry(t);
  const root = join(await tempDir(t), 'store');
  const name = `${reg.host}/team/app:1`;
  await runCli(['pull', name], { root });
  const junk = (await runCli(['ingest', 'junk'], { root, stdin: 'unreferenced' })).stdout.trim();
  // An ingest in flight: half its bytes written, its process still running.
  const pending = randomBytes(100_000);
  const { createHash } = await import('node:crypto');
  const pendingDigest = `sha256:${createHash('sha256').update(pending).digest('hex')}`;
  const child = spawn(DIST_BIN, ['ingest', '--expected-digest', pendingDigest, '--expected-size', String(pending.length), `x@${pendingDigest}`], { env: { ...process.env, DIST_ROOT: root }, stdio: ['pipe', 'ignore', 'pipe'] });
  child.stdin.write(pending.subarray(0, 50_000));
  for (let i = 0; i < 100 && !(await runCli(['active', '-q'], { root })).stdout; i++) await delay(50);
  // A pull that has committed a blob but not yet named its image holds it with a lease.
  const store = await openStore(root);
  const leased = (await runCli(['ingest', 'leased'], { root, stdin: 'leased blob' })).stdout.trim();
  const lease = await Lease.create(store);
  await lease.add([leased]);

  // What a process killed inside putBlob leaves: a temp file in ingest/. gc removes it once
  // it is a minute old, and leaves a fresh one (its writer may still be live).
  const deadTemp = join(root, 'ingest', `.${'a'.repeat(64)}.1.x.tmp`);
  const liveTemp = join(root, 'ingest', `.${'b'.repeat(64)}.2.y.tmp`);
  writeFileSync(deadTemp, 'partial');
  writeFileSync(liveTemp, 'partial');
  utimesSync(deadTemp, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
  assert.equal((await runCli(['active', '-q'], { root })).stdout, `x@${pendingDigest}\n`, 'active does not list temp files');

  const dry = await runCli(['gc', '--dry-run'], { root });
  assert.equal(dry.stdout, `${junk}\n`);
  assert.match(dry.stderr, /^dist gc: would free 1 blob, 12B \(12 bytes\)\n$/);
  assert.ok(existsSync(join(root, 'blobs', 'sha256', junk.slice(7))));
  const r = await runCli(['gc'], { root });
  assert.equal(r.stdout, `${junk}\n`);
  assert.match(r.stderr, /^dist gc: freed 1 blob, 12B \(12 bytes\)\n$/);
  assert.deepEqual((await leftovers(root)).blobs, [...allBlobs(img), leased].sort());
  assert.equal((await runCli(['active', '-q'], { root })).stdout, `x@${pendingDigest}\n`, 'the active ingest is kept');
  assert.deepEqual([existsSync(deadTemp), existsSync(liveTemp)], [false, true]);
  rmSync(liveTemp);
  assert.equal((await runCli(['verify'], { root })).status, 0);
  assert.equal((await runCli(['unpack', name, join(root, '..', 'rootfs')], { root })).status, 0);

  child.stdin.end(pending.subarray(50_000));
  assert.equal(await new Promise((res) => child.on('close', res)), 0);
  await lease.end();
  const after = await runCli(['gc'], { root });
  assert.deepEqual(after.stdout.trim().split('\n').sort(), [leased, pendingDigest].sort(), 'once the lease ended and the ingest committed, unnamed blobs go');
  await runCli(['images', 'rm', name], { root });
  await runCli(['gc'], { root });
  assert.deepEqual(await leftovers(root), { blobs: [], ingest: [] });
});

test('verify: a flipped byte is reported with its digest; --delete removes it', async (t) => {
  const root = join(await tempDir(t), 'store');
  const a = (await runCli(['ingest', 'a'], { root, stdin: 'intact' })).stdout.trim();
  const b = (await runCli(['ingest', 'b'], { root, stdin: 'will be corrupted' })).stdout.trim();
  const path = join(root, 'blobs', 'sha256', b.slice(7));
  chmodSync(path, 0o644);
  const bytes = readFileSync(path);
  bytes[3]! ^= 0x01;
  writeFileSync(path, bytes);
  const { createHash } = await import('node:crypto');
  const found = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const r = await runCli(['verify'], { root });
  assert.equal(r.status, 1);
  assert.equal(r.stdout, `${b}\tcorrupt: hashes to ${found}\n`);
  assert.equal(r.stderr, 'dist verify: 1 corrupt blob\n');
  const d = await runCli(['verify', '--delete'], { root });
  assert.equal(d.stdout, `${b}\tcorrupt: hashes to ${found} (removed)\n`);
  assert.deepEqual((await leftovers(root)).blobs, [a]);
  assert.equal((await runCli(['verify'], { root })).status, 0);
});

test('pull: live progress on a terminal (per-blob bars, totals, redrawn in place); none without one', async (t) => {
  requireTool('script');
  const { reg, img } = await imageRegistry(t);
  const root = join(await tempDir(t), 'store');
  const out = sh(`script -qec "${DIST_BIN} --root ${root} pull ${reg.host}/team/app:1" /dev/null`);
  assert.match(out, /\x1b\[\d+F\x1b\[J/, 'redraws in place');
  const last = out.slice(out.lastIndexOf('\x1b[J'));
  for (const d of img.layers) assert.match(last, new RegExp(`layer\\s+${d.slice(7, 19)}  \\[=+\\] .* done`));
  assert.match(last, /total: \d[\d.]*[kMG]?B\/\d[\d.]*[kMG]?B .*\/s/);
  assert.match(last, new RegExp(`${img.manifest}\\r?\\n$`), 'the digest is still printed last, on stdout');
});

/** A registry holding team/many:1, `n` layers of 16 KiB of random bytes each. */
async function smallLayers(t: any, n: number) {
  const reg = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const layers = Array.from({ length: n }, (_, i) => ({ [`layer-${i}/rand.bin`]: randomBytes(16 << 10) }));
  const img = await buildImage(src, '1', layers);
  await pushFromLayout(reg, src, 'team/many', '1', img.manifest, img.mediaType);
  return { reg, img };
}

/** A fault proxy in front of reg that flips one byte of blob `digest`. */
async function corrupting(t: any, reg: Registry, digest: string): Promise<FaultProxy> {
  const proxy = await new FaultProxy(reg.url).start(t);
  proxy.rules.push({ path: new RegExp(`/blobs/${digest}`), fault: { corrupt: true } });
  return proxy;
}

test('pull: 24 small layers at -j 16 land quietly with nothing left in ingest/; wrong bytes in one commit nothing of it', async (t) => {
  const { reg, img } = await smallLayers(t, 24);
  const root = join(await tempDir(t), 'store');
  // A real process: Node's MaxListenersExceededWarning goes to the process's stderr.
  const r = await spawnDist(['pull', '-j', '16', `${reg.host}/team/many:1`], { env: { ...process.env, DIST_ROOT: root } });
  assert.deepEqual([r.status, r.stderr], [0, ''], 'no warning about listeners, nothing at all on stderr');
  assert.deepEqual(await leftovers(root), { blobs: allBlobs(img), ingest: [] });
  assert.equal((await runCli(['verify'], { root })).status, 0);

  // The same image through a proxy that flips one byte of one small layer.
  const bad = img.layers[5]!;
  const proxy = await corrupting(t, reg, bad);
  const root2 = join(await tempDir(t), 'store');
  const r2 = await runCli(['pull', '-j', '16', `${proxy.host}/team/many:1`], { root: root2 });
  assert.equal(r2.status, 1);
  assert.match(r2.stderr, new RegExp(`^dist pull: ${bad}: digest mismatch: expected ${bad}, got sha256:[0-9a-f]{64}\\n$`));
  const left = await leftovers(root2);
  assert.ok(!left.blobs.includes(bad), 'the corrupt layer is not in blobs/');
  assert.deepEqual(left.ingest, []);
  const index = JSON.parse(readFileSync(join(root2, 'index.json'), 'utf8'));
  assert.deepEqual(index.manifests, [], 'the image is not named');
});

test('pull: the first blob that fails stops the rest; nothing is still downloading or writing when it returns', async (t) => {
  const { reg, img } = await smallLayers(t, 12);
  const bad = img.layers[1]!;
  const proxy = await corrupting(t, reg, bad);
  const root = join(await tempDir(t), 'store');
  const r = await runCli(['pull', '-j', '2', `${proxy.host}/team/many:1`], { root });
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`^dist pull: ${bad}: digest mismatch: expected ${bad}, got sha256:[0-9a-f]{64}\n$`));
  // Config, then layers two at a time: the failure is seen long before the last layers start.
  const requested = () => img.layers.filter((d) => proxy.seen.some((s) => s.url.endsWith(`/blobs/${d}`)));
  const atReturn = requested();
  assert.ok(atReturn.length < img.layers.length / 2, `${atReturn.length} of ${img.layers.length} layers were requested`);
  assert.deepEqual((await leftovers(root)).ingest, [], 'nothing half-written when the command returns');
  await new Promise((res) => setTimeout(res, 300));
  assert.deepEqual(requested(), atReturn, 'no layer was requested after the command returned');
});

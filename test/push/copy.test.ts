import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { runCli, sh } from '../helpers/cli.js';
import { FaultProxy } from '../helpers/faultproxy.js';
import { buildImage } from '../helpers/image.js';
import { fixtureDir, pushFromLayout, pushTwoPlatformIndex, startRegistry } from '../helpers/registry.js';

const MiB = 1 << 20;
const events = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l));
const raw = (host: string, ref: string) => sh(`skopeo inspect --raw --tls-verify=false docker://${host}/${ref}`);

test('copy: an index with all its platforms, byte for byte, to another registry; --platform narrows it to one manifest', async (t) => {
  const a = await startRegistry(t);
  const b = await startRegistry(t);
  const { amd, arm, index } = await pushTwoPlatformIndex(t, a, 'team/multi', '1');
  const r = await runCli(['copy', `${a.host}/team/multi:1`, `${b.host}/copied/multi:1`]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${index.digest}\n`);
  assert.equal(raw(b.host, 'copied/multi:1'), index.bytes.toString());
  assert.equal(raw(b.host, `copied/multi@${amd.manifest}`), amd.manifestBytes.toString());
  assert.equal(raw(b.host, `copied/multi@${arm.manifest}`), arm.manifestBytes.toString());

  const one = await runCli(['copy', '--platform', 'linux/arm64', `${a.host}/team/multi:1`, `${b.host}/copied/arm:1`]);
  assert.equal(one.status, 0, one.stderr);
  assert.equal(one.stdout, `${arm.manifest}\n`);
  assert.equal(raw(b.host, 'copied/arm:1'), arm.manifestBytes.toString());
});

test('copy: within a registry every blob is mounted; across registries an interrupted copy, run again, sends only what is missing', async (t) => {
  const a = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const layers = [0, 1, 2].map((i) => ({ files: { [`data/${i}`]: randomBytes(8 * MiB) }, compression: 'none' as const }));
  const img = await buildImage(src, '1', layers);
  await pushFromLayout(a, src, 'team/big', '1', img.manifest, img.mediaType);

  const within = await runCli(['copy', '--json', `${a.host}/team/big:1`, `${a.host}/other/big:1`]);
  assert.equal(within.status, 0, within.stderr);
  assert.deepEqual(events(within.stdout).filter((e) => e.event === 'blob').map((e) => e.status), ['mounted', 'mounted', 'mounted', 'mounted']);

  const b = await startRegistry(t);
  const proxy = await new FaultProxy(b.url).start(t);
  // The third layer's upload is refused: the copy stops, and no tag is left at the target.
  const third = img.layers[2]!;
  let started = 0;
  const take = (proxy as any).take.bind(proxy);
  (proxy as any).take = (req: any) => {
    const faults = take(req);
    if (req.method === 'PATCH' && ++started === 3) faults.push({ respond: { status: 400, body: '{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"injected"}]}' } });
    return faults;
  };
  const first = await runCli(['copy', '-j', '1', `${a.host}/team/big:1`, `${proxy.host}/copied/big:1`]);
  assert.equal(first.status, 1);
  assert.match(first.stderr, /^dist copy: .*BLOB_UPLOAD_INVALID: injected\n$/);
  const tagged = await fetch(`${b.url}/v2/copied/big/manifests/1`, { method: 'HEAD' });
  assert.equal(tagged.status, 404);
  const firstSent = proxy.sentFor(/\/blobs\/uploads\//, 'PATCH');
  proxy.seen = [];
  const again = await runCli(['copy', '--json', '-j', '1', `${a.host}/team/big:1`, `${proxy.host}/copied/big:1`]);
  assert.equal(again.status, 0, again.stderr);
  const statuses = events(again.stdout).filter((e) => e.event === 'blob').map((e) => [e.digest, e.status]);
  assert.deepEqual(statuses.filter(([, s]) => s === 'exists').length, 3, 'config and two layers were there');
  assert.deepEqual(statuses.filter(([, s]) => s === 'done').map(([d]) => d), [third]);
  const sent = proxy.sentFor(/\/blobs\/uploads\//, 'PATCH');
  assert.ok(sent <= 8 * MiB + 4096, `the run again sent ${sent} bytes: only the missing layer`);
  t.diagnostic(`first run sent ${firstSent} bytes before it stopped; the run again sent ${sent} (image ${img.layerSizes.reduce((x, y) => x + y, 0)})`);
  assert.equal(JSON.parse(sh(`skopeo inspect --tls-verify=false docker://${b.host}/copied/big:1`)).Digest, img.manifest);
});

test('copy: bytes that do not match their digest are refused before the upload is closed; no tag', async (t) => {
  const a = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, '1', [{ files: { 'data/x': randomBytes(2 * MiB) }, compression: 'none' }]);
  await pushFromLayout(a, src, 'team/app', '1', img.manifest, img.mediaType);
  const proxy = await new FaultProxy(a.url).start(t);
  proxy.rules = [{ method: 'GET', path: new RegExp(`/blobs/${img.layers[0]}`), fault: { corrupt: true } }];
  const b = await startRegistry(t);
  const r = await runCli(['copy', `${proxy.host}/team/app:1`, `${b.host}/copied/app:1`]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`^dist copy: ${img.layers[0]}: the bytes sent hash to sha256:`));
  assert.equal((await fetch(`${b.url}/v2/copied/app/manifests/1`, { method: 'HEAD' })).status, 404);
  assert.equal((await fetch(`${b.url}/v2/copied/app/blobs/${img.layers[0]}`, { method: 'HEAD' })).status, 404);
});

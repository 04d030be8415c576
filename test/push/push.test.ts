import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, sh } from '../helpers/cli.js';
import { buildImage, type BuiltImage } from '../helpers/image.js';
import { fixtureDir, pushFromLayout, startRegistry, type Registry } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1 << 20;

/** A registry holding team/app:1 (a small layer, a 3 MiB layer, a config), and a store that pulled it. */
async function pulled(t: any, layer = 3 * MiB): Promise<{ reg: Registry; img: BuiltImage; root: string }> {
  const reg = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, '1', [{ files: { 'etc/os-release': 'ID=dist-test\n' } }, { files: { 'data/blob': randomBytes(layer) }, compression: 'none' }]);
  await pushFromLayout(reg, src, 'team/app', '1', img.manifest, img.mediaType);
  const root = join(await tempDir(t), 'store');
  const r = await runCli(['pull', `${reg.host}/team/app:1`], { root });
  assert.equal(r.status, 0, r.stderr);
  return { reg, img, root };
}

const events = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l));

test('push: pull X && push X round-trips (every blob exists), and a push to a fresh registry uploads it whole', async (t) => {
  const { reg, img, root } = await pulled(t);
  const again = await runCli(['push', '--json', `${reg.host}/team/app:1`], { root });
  assert.equal(again.status, 0, again.stderr);
  const ev = events(again.stdout);
  assert.deepEqual(ev.filter((e) => e.event === 'blob').map((e) => e.status), ['exists', 'exists', 'exists']);
  assert.equal(ev.at(-1).digest, img.manifest);

  const reg2 = await startRegistry(t);
  const r = await runCli(['push', `${reg.host}/team/app:1`, `${reg2.host}/copy/app:2`], { root });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${img.manifest}\n`);
  assert.equal(r.stderr, '');
  const got = JSON.parse(sh(`skopeo inspect --tls-verify=false docker://${reg2.host}/copy/app:2`));
  assert.equal(got.Digest, img.manifest);
  assert.deepEqual(got.Layers, img.layers);
});

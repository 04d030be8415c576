import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { requireTool, sh, shellEnv } from '../helpers/cli.js';
import { buildImage, type BuiltImage } from '../helpers/image.js';
import { fixtureDir, pushFromLayout, startRegistry, type Registry } from '../helpers/registry.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const DOCKER_MT = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_MT = 'application/vnd.oci.image.manifest.v1+json';

/** The seed's pipeline, verbatim but for the registry address R and the media type. */
const seed = (R: string, mediatype: string) =>
  `dist fetch ${R}/library/debian 12 mediatype:${mediatype} | jq -r '.layers[] | "dist fetch ${R}/library/debian "+.digest + "| dist ingest --expected-digest "+.digest+" --expected-size "+(.size | tostring) +" ${R}/library/debian@"+.digest' | xargs -I{} -P10 -n1 sh -c "{}"`;

const files = (seedText: string, n: number) => ({ [`data/${seedText}.bin`]: randomBytes(n), [`etc/${seedText}.conf`]: `${seedText}\n` });

async function registryWith(t: any, kind: 'docker' | 'oci'): Promise<{ reg: Registry; img: BuiltImage; src: string }> {
  const reg = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const layers =
    kind === 'docker'
      ? [{ files: files('base', 3 << 20) }, { files: files('gz', 1 << 20) }, { files: files('plain', 200_000), compression: 'none' as const }]
      : [{ files: files('base', 3 << 20) }, { files: files('zst', 1 << 20), compression: 'zstd' as const }, { files: files('plain', 200_000), compression: 'none' as const }, { files: files('gz', 10_000) }];
  const img = await buildImage(src, '12', layers, { docker: kind === 'docker' });
  await pushFromLayout(reg, src, 'library/debian', '12', img.manifest, img.mediaType);
  return { reg, img, src };
}

async function assertStoreHoldsLayers(root: string, img: BuiltImage, src: string): Promise<void> {
  assert.deepEqual(await leftovers(root), { blobs: [...img.layers].sort(), ingest: [] });
  for (const d of img.layers) {
    const stored = await readFile(join(root, 'blobs', 'sha256', d.slice(7)));
    assert.equal(`sha256:${createHash('sha256').update(stored).digest('hex')}`, d);
    assert.ok(stored.equals(await readFile(join(src, 'blobs', 'sha256', d.slice(7)))), `${d} is byte-identical`);
  }
}

for (const [kind, mt] of [['docker', DOCKER_MT], ['oci', OCI_MT]] as const) {
  test(`seed pipeline (${kind} manifest): fills the store with exactly the manifest's layers, byte-identical; again and twice at once, same store`, async (t) => {
    requireTool('jq');
    const { reg, img, src } = await registryWith(t, kind);
    const cwd = await tempDir(t);
    const env = shellEnv();
    sh(seed(reg.host, mt), { cwd, env });
    await assertStoreHoldsLayers(join(cwd, '.content'), img, src);
    const before = sh('dist list -q', { cwd, env });

    sh(seed(reg.host, mt), { cwd, env });
    assert.equal(sh('dist list -q', { cwd, env }), before);

    const cwd2 = await tempDir(t);
    await Promise.all([0, 1].map(() => new Promise<void>((resolve, reject) => {
      import('node:child_process').then(({ exec }) =>
        exec(seed(reg.host, mt), { cwd: cwd2, env, shell: '/bin/bash' }, (err, _o, stderr) => (err ? reject(new Error(stderr)) : resolve())),
      );
    })));
    await assertStoreHoldsLayers(join(cwd2, '.content'), img, src);
    assert.equal(sh('dist list -q', { cwd: cwd2, env }), before);
  });
}

test('seed apply pipeline shape: dist path -n of each fetched layer names a file that hashes to its digest', async (t) => {
  requireTool('jq');
  const { reg, img } = await registryWith(t, 'docker');
  const cwd = await tempDir(t);
  const env = shellEnv();
  sh(seed(reg.host, DOCKER_MT), { cwd, env });
  const out = sh(`dist fetch ${reg.host}/library/debian 12 mediatype:${DOCKER_MT} | jq -r '.layers[] | "sha256sum < $(dist path -n "+.digest+")"' | xargs -I{} -n1 sh -c "{}"`, { cwd, env });
  assert.deepEqual(out.trim().split('\n').map((l) => `sha256:${l.split(' ')[0]}`), img.layers);
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { requireTool, runCli, sh } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { buildImage } from '../helpers/image.js';

test('interop: umoci reads an empty store as a valid OCI layout', async (t) => {
  requireTool('umoci');
  const root = join(await tempDir(t), 'store');
  const r = await runCli(['list'], { root });
  assert.equal(r.status, 0);
  // list alone does not create a store; an ingest does.
  await runCli(['ingest', 'x'], { root, stdin: '' });
  assert.equal(sh(`umoci ls --layout ${root}`), '');
});

test('interop: skopeo copies an image into the store; dist list names its blobs; skopeo and umoci read it back', async (t) => {
  requireTool('skopeo');
  requireTool('umoci');
  const dir = await tempDir(t);
  const root = join(dir, 'store');
  await runCli(['ingest', 'init'], { root, stdin: '' });
  const src = join(dir, 'src');
  const image = await buildImage(src, 'demo', [
    { 'hello.txt': 'hello\n', 'bin/': null },
    { 'hello.txt': 'hello again\n' },
  ]);
  sh(`skopeo copy --quiet oci:${src}:demo oci:${root}:demo`);
  const listed = (await runCli(['list', '--json'], { root })).stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
  const named = listed.filter((b) => b.usedBy.includes('demo')).map((b) => b.digest).sort();
  assert.deepEqual(named, [image.manifest, image.config, ...image.layers].sort());
  assert.equal(sh(`umoci ls --layout ${root}`), 'demo\n');
  const inspect = JSON.parse(sh(`skopeo inspect --raw oci:${root}:demo`));
  assert.equal(inspect.layers.length, 2);
  // The blob dist serves by path is exactly what skopeo wrote.
  const path = (await runCli(['path', '-q', image.layers[0]!], { root })).stdout.trim();
  assert.equal(`sha256:${createHash('sha256').update(sh(`cat ${path} | base64 -w0`), 'base64').digest('hex')}`, image.layers[0]);
});

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { buildImage } from '../helpers/image.js';
import { fixtureDir, pushFromLayout, startRegistry } from '../helpers/registry.js';

test('tls: verification is on by default; --ca-file trusts a CA; --insecure skips it, loudly', async (t) => {
  const reg = await startRegistry(t, { tls: true });
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, 'v1', [{ 'f.txt': 'tls\n' }]);
  await pushFromLayout(reg, src, 'team/app', 'v1', img.manifest, img.mediaType);
  const layer = await readFile(join(src, 'blobs', 'sha256', img.layers[0]!.slice(7)));
  const url = `https://${reg.host}/team/app`;

  const unverified = await runCli(['fetch', url, img.layers[0]!]);
  assert.equal(unverified.status, 1);
  assert.match(unverified.stderr, /^dist fetch: TLS verification failed for 127\.0\.0\.1:\d+: \w+ \(use --ca-file, or --insecure to skip verification\)\n$/);

  const trusted = await runCli(['fetch', '--ca-file', reg.caFile!, url, img.layers[0]!]);
  assert.equal(trusted.status, 0, trusted.stderr);
  assert.ok(trusted.stdoutBytes.equals(layer));
  assert.equal(trusted.stderr, '');

  const insecure = await runCli(['fetch', '--insecure', url, img.layers[0]!]);
  assert.equal(insecure.status, 0, insecure.stderr);
  assert.ok(insecure.stdoutBytes.equals(layer));
  assert.equal(insecure.stderr, 'dist fetch: warning: TLS certificate verification is disabled\n');
});

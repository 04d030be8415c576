import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, spawnDist } from '../helpers/cli.js';
import { buildImage } from '../helpers/image.js';
import { fixtureDir, pushFromLayout, startRegistry } from '../helpers/registry.js';

/** A TLS registry holding team/app:v1, one layer with a file of `text`. */
async function tlsImage(t: any, text: string) {
  const reg = await startRegistry(t, { tls: true });
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, 'v1', [{ 'f.txt': text }]);
  await pushFromLayout(reg, src, 'team/app', 'v1', img.manifest, img.mediaType);
  const layer = await readFile(join(src, 'blobs', 'sha256', img.layers[0]!.slice(7)));
  return { reg, img, layer, url: `https://${reg.host}/team/app` };
}

test('tls: verification is on by default; --ca-file trusts a CA; --insecure skips it, loudly', async (t) => {
  const { reg, img, layer, url } = await tlsImage(t, 'tls\n');

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

test('tls: bin/dist trusts NODE_EXTRA_CA_CERTS, read at the first TLS connection', async (t) => {
  const { reg, img, layer, url } = await tlsImage(t, 'extra ca\n');
  const env = (extra: NodeJS.ProcessEnv) => ({ PATH: process.env.PATH, HOME: process.env.HOME, ...extra });

  // The launcher keeps node from loading the file at start-up; the client must still use it.
  const trusted = await spawnDist(['fetch', url, img.layers[0]!], { env: env({ NODE_EXTRA_CA_CERTS: reg.caFile }) });
  assert.equal(trusted.stderr, '');
  assert.equal(trusted.status, 0);
  assert.ok(trusted.stdoutBytes.equals(layer));

  const untrusted = await spawnDist(['fetch', url, img.layers[0]!], { env: env({}) });
  assert.equal(untrusted.status, 1);
  assert.match(untrusted.stderr, /^dist fetch: TLS verification failed for 127\.0\.0\.1:\d+: \w+ \(use --ca-file, or --insecure to skip verification\)\n$/);

  // An unreadable file: node would warn and go on without it; dist does the same, once.
  const missing = await spawnDist(['fetch', url, img.layers[0]!], { env: env({ NODE_EXTRA_CA_CERTS: '/nonexistent/ca.pem' }) });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^dist fetch: warning: ignoring extra certs from NODE_EXTRA_CA_CERTS=\/nonexistent\/ca\.pem: ENOENT\ndist fetch: TLS verification failed for /);
  assert.equal(missing.stderr.split('\n').length, 3);

  // --ca-file adds to the trust: together with the extra file, both are used.
  const both = await spawnDist(['fetch', '--ca-file', reg.caFile!, url, img.layers[0]!], { env: env({ NODE_EXTRA_CA_CERTS: '/nonexistent/ca.pem' }) });
  assert.equal(both.status, 0, both.stderr);
  assert.ok(both.stdoutBytes.equals(layer));
});

test('tls: an unreadable --ca-file is one clear error', async (t) => {
  const reg = await startRegistry(t, { tls: true });
  const r = await runCli(['fetch', '--ca-file', '/nonexistent/ca.pem', `https://${reg.host}/team/app`, 'sha256:' + 'a'.repeat(64)]);
  assert.equal(r.status, 1);
  assert.equal(r.stderr, 'dist fetch: cannot read --ca-file /nonexistent/ca.pem: ENOENT\n');
});

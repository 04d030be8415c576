// The client side: dist pull --mirror <url> (repeatable) tries each mirror first, then the registry.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { FaultProxy } from '../helpers/faultproxy.js';
import { freePort, pushFromLayout, startRegistry } from '../helpers/registry.js';
import { busyboxStore, startServe } from '../helpers/serve.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

test('pull --mirror: objects come from the first mirror that has them; a dead mirror and one without the image fall back to the registry', async (t) => {
  const { root: held, img } = await busyboxStore(t);
  const reg = await startRegistry(t);
  await pushFromLayout(reg, held, 'team/busybox', '1', img.manifest, img.mediaType);
  const proxy = await new FaultProxy(reg.url).start(t);
  const ref = `${proxy.host}/team/busybox:1`;
  const want = { blobs: [img.manifest, img.config, ...img.layers].sort(), ingest: [] };
  const full = await startServe(t, held, ['--quiet']);
  const empty = await startServe(t, join(await tempDir(t), 'empty'), ['--quiet']);
  const dead = `127.0.0.1:${await freePort()}`;

  // A dead mirror, then one that has everything: the registry sees nothing.
  const a = join(await tempDir(t), 'a');
  const r1 = await runCli(['pull', '--mirror', `http://${dead}`, '--mirror', `http://${full.host}`, ref], { root: a });
  assert.equal(r1.status, 0, r1.stderr);
  assert.equal(r1.stdout, `${img.manifest}\n`);
  assert.deepEqual(await leftovers(a), want);
  assert.equal(proxy.seen.length, 0, 'nothing went to the registry');

  // A mirror without the image: every object falls back to the registry.
  const b = join(await tempDir(t), 'b');
  const r2 = await runCli(['pull', '--mirror', empty.host, ref], { root: b });
  assert.equal(r2.status, 0, r2.stderr);
  assert.deepEqual(await leftovers(b), want);
  assert.equal(proxy.seen.filter((s) => s.method === 'GET' && /\/blobs\//.test(s.url)).length, img.layers.length + 1);

  // A mirror that is not a registry address is refused before anything is fetched.
  const bad = await runCli(['pull', '--mirror', 'http://bad host', ref], { root: join(await tempDir(t), 'c') });
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr, 'dist pull: invalid mirror "http://bad host": expected a registry URL or host[:port]\n');
});

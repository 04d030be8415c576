import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { requireTool, sh, spawnDist } from '../helpers/cli.js';
import { lawTree, treeDifferences } from '../helpers/lawtree.js';
import { containers, lowercaseTempDir } from '../helpers/podman.js';
import { busyboxRootfs } from '../helpers/rootfs.js';
import { leftovers } from '../helpers/store.js';

function blob(store: string, digest: string): any {
  return JSON.parse(readFileSync(join(store, 'blobs', 'sha256', digest.slice(7)), 'utf8'));
}

async function dist(store: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const r = await spawnDist(['--root', store, ...args], { env: env ?? process.env });
  assert.equal(r.status, 0, `dist ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('dist commit: an image over a base with config, history and name; base unpacked once; podman runs it; umoci unpack equals dist unpack', async (t) => {
  requireTool('umoci');
  const dir = await lowercaseTempDir(t);
  const store = join(dir, 'store');
  const base = join(dir, 'base');
  busyboxRootfs(base);
  const first = (await dist(store, ['commit', base, '--base', 'empty', '--name', 'busybox'])).trim();
  assert.match(first, /^sha256:[0-9a-f]{64}$/);

  const work = join(dir, 'work');
  await dist(store, ['unpack', 'busybox', work]);
  mkdirSync(join(work, 'app'));
  writeFileSync(join(work, 'app', 'hello'), '#!/bin/sh\necho "$GREETING from a dist commit"\n');
  chmodSync(join(work, 'app', 'hello'), 0o755);
  rmSync(join(work, 'etc', 'motd'));
  const config = JSON.stringify({ entrypoint: ['/app/hello'], env: ['GREETING=hi'], workdir: '/app', labels: { made: 'by dist' } });
  const digest = (await dist(store, ['commit', work, '--base', 'busybox', '--name', 'app', '-m', 'add hello', '--config', config])).trim();

  const manifest = blob(store, digest);
  assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(manifest.layers.length, 2);
  assert.equal(manifest.layers[1].mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
  const cfg = blob(store, manifest.config.digest);
  assert.equal(cfg.rootfs.diff_ids.length, 2);
  assert.deepEqual(cfg.history.map((h: any) => h.comment ?? null), [null, 'add hello']);
  assert.deepEqual(cfg.config.Entrypoint, ['/app/hello']);
  assert.deepEqual(cfg.config.Env, ['GREETING=hi']);
  assert.equal(cfg.config.WorkingDir, '/app');
  assert.deepEqual(cfg.config.Labels, { made: 'by dist' });
  const index = JSON.parse(readFileSync(join(store, 'index.json'), 'utf8'));
  const named = index.manifests.find((m: any) => m.annotations['org.opencontainers.image.ref.name'] === 'app');
  assert.equal(named.digest, digest);

  // The base's rootfs is cached by ChainID: a second commit on it does not unpack it again.
  const cached = join(store, 'build', 'rootfs', cfg.rootfs.diff_ids[0].replace(':', '-'));
  assert.ok(existsSync(join(cached, 'bin', 'busybox')));
  writeFileSync(join(cached, '.marker'), 'x');
  await dist(store, ['commit', work, '--base', 'busybox', '--name', 'app2']);
  assert.ok(existsSync(join(cached, '.marker')), 'the cached base was reused, not unpacked again');
  rmSync(join(cached, '.marker'));

  const c = await containers(t);
  const out = c.run(['run', '--rm', '--network=none', `oci:${store}:app`]);
  assert.equal(out.stdout, 'hi from a dist commit\n');

  sh(`umoci unpack --image ${store}:app ${join(dir, 'bundle')}`);
  const ours = join(dir, 'ours');
  await dist(store, ['unpack', 'app', ours]);
  assert.deepEqual(treeDifferences(lawTree(join(dir, 'bundle', 'rootfs')), lawTree(ours)), []);
  assert.ok(!existsSync(join(ours, 'etc', 'motd')));
});

test('dist commit: bad input is one line and leaves no blob or ingest behind', async (t) => {
  const dir = await lowercaseTempDir(t);
  const store = join(dir, 'store');
  const base = join(dir, 'base');
  busyboxRootfs(base);
  await dist(store, ['commit', base, '--base', 'empty', '--name', 'busybox']);
  const before = await leftovers(store);
  const cases: [string[], string][] = [
    [['commit', base, '--base', 'nope', '--name', 'x'], 'dist commit: no image named "nope" in the store (see dist images)\n'],
    [['commit', join(dir, 'missing'), '--base', 'busybox', '--name', 'x'], `dist commit: upper directory ${join(dir, 'missing')} does not exist\n`],
    [['commit', base, '--base', 'busybox', '--name', 'Bad Name'], 'dist commit: invalid image name "Bad Name"\n'],
    [['commit', base, '--base', 'busybox', '--name', 'x', '--config', '{"entrypint":"/x"}'], 'dist commit: --config: unknown key "entrypint" (known: entrypoint, cmd, env, workdir, user, labels)\n'],
    [['commit', base, '--base', 'busybox', '--name', 'x', '--config', '{"env":"A"}'], 'dist commit: --config: env: expected a list of KEY=VALUE or a map\n'],
  ];
  for (const [args, stderr] of cases) {
    const r = await spawnDist(['--root', store, ...args]);
    assert.equal(r.status, 1, args.join(' '));
    assert.equal(r.stderr, stderr);
  }
  assert.deepEqual(await leftovers(store), before);
});

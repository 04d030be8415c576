import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { DIST_BIN, requireTool, runCli, sh, shellEnv } from '../helpers/cli.js';
import { FaultProxy } from '../helpers/faultproxy.js';
import { buildImage, type BuiltImage } from '../helpers/image.js';
import { fixtureDir, pushFromLayout, startRegistry, type Registry } from '../helpers/registry.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';
import { writeBlob } from '../../lib/content/ingest.js';
import { openStore } from '../../lib/content/store.js';

const STALL_AT = 1_000_000;

async function bigImage(t: any): Promise<{ reg: Registry; img: BuiltImage }> {
  const reg = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, '1', [{ files: { 'bin/big': randomBytes(3 << 20) } }, { files: { 'etc/small': 'x\n' } }]);
  await pushFromLayout(reg, src, 'team/app', '1', img.manifest, img.mediaType);
  return { reg, img };
}

/** Ingests as `dist active --json` lists them. */
async function active(root: string): Promise<{ ref: string; size: number; live: boolean }[]> {
  const out = (await runCli(['active', '--json'], { root })).stdout.trim();
  return out ? out.split('\n').map((l) => JSON.parse(l)) : [];
}

/**
 * Pulls through `addressA` (a proxy that stalls the big layer after STALL_AT bytes), kill -9s
 * the pull, and waits until its ingest's lock has gone stale (the process is dead; the lock
 * says so once unrefreshed). Returns the bytes the dead ingest holds.
 */
async function killedPull(root: string, addressA: FaultProxy, img: BuiltImage): Promise<number> {
  const big = img.layers[0]!;
  addressA.rules.push({ path: new RegExp(`/blobs/${big}`), fault: { stallAfter: STALL_AT } });
  const child = spawn(DIST_BIN, ['pull', `${addressA.host}/team/app:1`], { env: { ...process.env, DIST_ROOT: root }, stdio: 'ignore' });
  const exited = new Promise((r) => child.on('exit', r));
  // Killed once the big layer's ingest holds STALL_AT bytes and every small blob is committed
  // (so no temp file of a small blob is cut short: the kill hits the big download only).
  const small = [img.manifest, img.config, img.layers[1]!];
  const ready = async () => (await active(root)).some((a) => a.ref.endsWith(big) && a.size === STALL_AT) && small.every((d) => existsSync(join(root, 'blobs', 'sha256', d.slice(7))));
  for (let i = 0; i < 400 && !(await ready()); i++) await delay(50);
  child.kill('SIGKILL');
  await exited;
  let held = await active(root);
  for (let i = 0; i < 400 && held.some((a) => a.live); i++) {
    await delay(100);
    held = await active(root);
  }
  assert.deepEqual(held.map((a) => [a.ref, a.size, a.live]), [[`${addressA.host}/team/app@${big}`, STALL_AT, false]]);
  return STALL_AT;
}

test('resume by content: a pull through address B after a kill -9 pull through A sends one Range request for size - held bytes; no ingest is left', async (t) => {
  const { reg, img } = await bigImage(t);
  const a = await new FaultProxy(reg.url).start(t);
  const b = await new FaultProxy(reg.url).start(t);
  const big = img.layers[0]!;
  const size = img.layerSizes[0]!;
  const root = join(await tempDir(t), 'store');
  const held = await killedPull(root, a, img);

  const r = await runCli(['pull', `${b.host}/team/app:1`], { root });
  assert.equal(r.status, 0, r.stderr);
  const requests = b.seen.filter((s) => s.url.includes(big));
  assert.deepEqual(requests.map((s) => s.range), [`bytes=${held}-`], 'one Range request from the held offset');
  assert.equal(requests[0]!.bytes, size - held, 'only the missing bytes crossed the wire');
  t.diagnostic(`layer ${size} bytes: B sent ${requests[0]!.bytes}, the ${held} held bytes of A's dead ingest were not sent again`);
  assert.deepEqual(await leftovers(root), { blobs: [img.manifest, img.config, ...img.layers].sort(), ingest: [] });
  assert.equal((await runCli(['verify'], { root })).status, 0);
});

test('resume by content: the seed pipeline through another address (another ref prefix) takes up the dead ingest of a killed pull; no ingest is left', async (t) => {
  requireTool('jq');
  const { reg, img } = await bigImage(t);
  const a = await new FaultProxy(reg.url).start(t);
  const cwd = await tempDir(t);
  const root = join(cwd, '.content');
  await killedPull(root, a, img);
  const R = reg.host;
  const mt = 'application/vnd.oci.image.manifest.v1+json';
  // The seed's pipeline (repository and tag aside); async, so the proxy above keeps serving.
  const line = `dist fetch ${R}/team/app 1 mediatype:${mt} | jq -r '.layers[] | "dist fetch ${R}/team/app "+.digest + "| dist ingest --expected-digest "+.digest+" --expected-size "+(.size | tostring) +" ${R}/team/app@"+.digest' | xargs -I{} -P10 -n1 sh -c "{}"`;
  await new Promise<void>((resolve, reject) => {
    const c = spawn('bash', ['-o', 'pipefail', '-c', line], { cwd, env: shellEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(err))));
  });
  assert.deepEqual(await leftovers(root), { blobs: [img.manifest, img.config, ...img.layers].sort(), ingest: [] }, "A's dead ingest was taken up, not left behind");
  assert.equal(sh('dist verify', { cwd, env: shellEnv() }), '');
});

test('resume by content: ingest --expected-digest under another ref writes only the bytes the dead ingest lacks', async (t) => {
  const root = join(await tempDir(t), 'store');
  const store = await openStore(root);
  const bytes = randomBytes(300_000);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  // An interrupted ingest under an unrelated ref: its digest is known from --expected-digest.
  const first = await runCli(['ingest', '--expected-digest', digest, '--expected-size', String(bytes.length), 'some/other/ref'], { root, stdin: bytes.subarray(0, 120_000) });
  assert.equal(first.status, 1);
  assert.deepEqual((await active(root)).map((a) => [a.ref, a.size]), [['some/other/ref', 120_000]]);
  const r = await writeBlob(store, () => Readable.from([bytes]), { ref: 'mirror/app@' + digest, expected: digest, size: bytes.length });
  assert.deepEqual(r, { digest, existed: false, written: 180_000 });
  assert.deepEqual(await leftovers(root), { blobs: [digest], ingest: [] });
  const cli = await runCli(['ingest', '--expected-digest', digest], { root, stdin: bytes });
  assert.equal(cli.status, 0, 'an existing blob: exit 0 at once');
});

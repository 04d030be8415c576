// Many clients at once: 32 concurrent dist pulls from one dist serve, each verified by the
// store it lands in; the server's peak RSS is reported.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { buildImage } from '../helpers/image.js';
import { busyboxRootfs } from '../helpers/rootfs.js';
import { startServe } from '../helpers/serve.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const PULLS = 32;
/** A layer large enough that the 32 pulls move far more than the server could hold: 32 x 16 MiB = 512 MiB. */
const BIG = 16 << 20;
/**
 * The bound on the server's peak RSS. Measured on this machine: 188 MiB after 32 concurrent
 * pulls of 17 MiB each (Node's ~60 MiB, plus per response a 1 MiB file read and what the
 * socket queues). A server that buffered the blobs would pass 512 MiB.
 */
const RSS_BOUND_MIB = 320;

test(`load: ${PULLS} concurrent dist pulls of one image from dist serve all verify; the server's peak RSS stays flat`, async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'store');
  const img = await buildImage(root, 'load/image:1', [
    { tar: busyboxRootfs(join(dir, 'rootfs')), compression: 'gzip' },
    { files: { 'data/big.bin': randomBytes(BIG) }, compression: 'none' },
  ]);
  const srv = await startServe(t, root, ['--quiet']);
  const stores = Array.from({ length: PULLS }, (_, i) => join(dir, `client-${i}`));
  const results = await Promise.all(stores.map((s) => runCli(['pull', `${srv.host}/load/image:1`], { root: s })));
  for (const r of results) {
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${img.manifest}\n`);
  }
  // Each store committed every blob only after its digest checked: all of them there, no ingest left.
  const want = [img.manifest, img.config, ...img.layers].sort();
  for (const s of stores) assert.deepEqual(await leftovers(s), { blobs: want, ingest: [] });
  const rss = srv.peakRssMiB();
  t.diagnostic(`dist serve peak RSS after ${PULLS} concurrent pulls of ${((BIG + img.layerSizes[0]!) / 2 ** 20).toFixed(1)} MiB each: ${rss.toFixed(0)} MiB`);
  assert.ok(rss > 0 && rss < RSS_BOUND_MIB, `peak RSS ${rss.toFixed(0)} MiB`);
});

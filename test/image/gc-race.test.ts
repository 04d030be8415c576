import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnDist } from '../helpers/cli.js';
import { buildImage } from '../helpers/image.js';
import { fixtureDir, pushFromLayout, startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';

const IMAGES = 6;
const ROUNDS = 6;

test('gc against finishing pulls: dist gc in a loop while 6 pulls of different images run, 6 rounds; every named image verifies and unpacks', async (t) => {
  const reg = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const names: string[] = [];
  for (let i = 0; i < IMAGES; i++) {
    // Small blobs (putBlob's path): a pull then spends most of its time naming and ending its
    // lease, the window this test aims at.
    const img = await buildImage(src, `${i}`, [{ [`f${i}`]: randomBytes(4096) }, { [`g${i}`]: randomBytes(4096) }, { [`h${i}`]: randomBytes(4096) }]);
    await pushFromLayout(reg, src, `team/img${i}`, '1', img.manifest, img.mediaType);
    names.push(`${reg.host}/team/img${i}:1`);
  }
  const root = join(await tempDir(t), 'store');
  const env = { ...process.env, DIST_ROOT: root };
  let stop = false;
  let iterations = 0;
  const gcLoop = (async () => {
    while (!stop) {
      const r = await spawnDist(['gc'], { env });
      assert.equal(r.status, 0, r.stderr);
      iterations++;
    }
  })();
  const lost: string[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const pulls = await Promise.all(names.map((n) => spawnDist(['pull', n], { env })));
      for (const p of pulls) assert.equal(p.status, 0, p.stderr);
      const verify = await spawnDist(['verify'], { env });
      assert.equal(verify.status, 0, verify.stdout + verify.stderr);
      for (const n of names) {
        const dir = join(await tempDir(t), 'rootfs');
        const u = await spawnDist(['unpack', n, dir], { env });
        if (u.status !== 0) lost.push(`round ${round}: ${u.stderr.trim()}`);
      }
      // Unname them all: the gc loop frees their blobs, and the next round pulls them again.
      const rm = await spawnDist(['images', 'rm', ...names], { env });
      assert.equal(rm.status, 0, rm.stderr);
    }
  } finally {
    stop = true;
    await gcLoop;
  }
  t.diagnostic(`gc iterations while ${ROUNDS * IMAGES} pulls ran: ${iterations}`);
  assert.deepEqual(lost, [], 'a named image lost blobs to gc');
  assert.ok(iterations >= ROUNDS, 'gc ran throughout');
});

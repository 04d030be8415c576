import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { DIST_BIN, spawnDist } from '../helpers/cli.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';
import { Store } from '../../lib/content/store.js';

test('crash: kill -9 mid-stream leaves an active ingest; a later ingest of the ref resumes and completes', async (t) => {
  const root = join(await tempDir(t), 'store');
  const data = randomBytes(8 * 1024 * 1024);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const args = ['ingest', '--expected-digest', digest, '--expected-size', String(data.length), 'crash-ref'];
  const env = { ...process.env, DIST_ROOT: root };

  // Feed half the bytes, wait until they are on disk, then kill -9 the writer.
  const child = spawn(DIST_BIN, args, { env, stdio: ['pipe', 'ignore', 'ignore'] });
  child.stdin.on('error', () => {});
  child.stdin.write(data.subarray(0, data.length / 2));
  const dataFile = join(new Store(root).ingestDir('crash-ref'), 'data');
  for (let i = 0; i < 200; i++) {
    const size = await stat(dataFile).then((s) => s.size, () => 0);
    if (size === data.length / 2) break;
    await delay(50);
  }
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await exited;

  const active = await spawnDist(['active', '--json'], { env });
  const row = JSON.parse(active.stdout);
  assert.equal(row.ref, 'crash-ref');
  assert.equal(row.size, data.length / 2);
  assert.equal(row.total, data.length);
  assert.deepEqual((await leftovers(root)).blobs, []);

  // The dead holder's lock is stale after at most 5 s; the new ingest takes it over and
  // skips the half it already holds.
  const started = Date.now();
  const again = await spawnDist(args, { env, input: data });
  assert.equal(again.status, 0, again.stderr);
  assert.ok(Date.now() - started < 20_000, 'the stale lock was taken over');
  assert.deepEqual(await leftovers(root), { blobs: [digest], ingest: [] });
  assert.equal((await spawnDist(['active'], { env })).stdout, 'REF\tSIZE\tTOTAL\tSTARTED\tUPDATED\n');
});

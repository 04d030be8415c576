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

test('ingest from a pipe: a holder stalled past the stale time keeps its lock; a second ingest waits and then finds the blob', async (t) => {
  // bin/dist reads a piped stdin through lendPipe (cmd/io.ts). The ingest lock's refresh timer
  // must keep running while the pipe is quiet, or a second ingest would take the lock over.
  const root = join(await tempDir(t), 'store');
  const data = randomBytes(4 * 1024 * 1024);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const args = ['ingest', '--expected-digest', digest, '--expected-size', String(data.length), 'slow-ref'];
  const env = { ...process.env, DIST_ROOT: root, DIST_DEBUG: '' };
  const first = spawn(DIST_BIN, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let firstErr = '';
  first.stderr.on('data', (c) => (firstErr += c));
  const firstExit = new Promise<number | null>((r) => first.on('exit', r));
  first.stdin.write(data.subarray(0, data.length / 2));
  await delay(500);
  const second = spawnDist(args, { env, input: data });
  await delay(6500); // past STALE_MS (5 s) with nothing on the first one's stdin
  first.stdin.end(data.subarray(data.length / 2));
  assert.equal(await firstExit, 0, firstErr);
  assert.equal(firstErr, '');
  const s = await second;
  assert.equal(s.status, 0, s.stderr);
  assert.deepEqual(await leftovers(root), { blobs: [digest], ingest: [] });
});

test('ingest from a pipe: too long or wrong bytes are one line, nothing kept; Ctrl-C keeps the ingest for resume', async (t) => {
  const root = join(await tempDir(t), 'store');
  const env = { ...process.env, DIST_ROOT: root, DIST_DEBUG: '' };
  const data = randomBytes(3 * 1024 * 1024);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const long = await spawnDist(['ingest', '--expected-digest', digest, '--expected-size', '1000000', 'r'], { env, input: data });
  assert.equal(long.status, 1);
  assert.equal(long.stderr, `dist ingest: ${digest}: content is larger than the expected size 1000000\n`);
  const wrong = Buffer.from(data);
  wrong[2_000_000]! ^= 1;
  const bad = await spawnDist(['ingest', '--expected-digest', digest, '--expected-size', String(data.length), 'r'], { env, input: wrong });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, new RegExp(`^dist ingest: ${digest}: digest mismatch: expected ${digest}, got sha256:[0-9a-f]{64}\\n$`));
  assert.deepEqual(await leftovers(root), { blobs: [], ingest: [] });

  const child = spawn(DIST_BIN, ['ingest', '--expected-digest', digest, '--expected-size', String(data.length), 'int-ref'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c) => (err += c));
  const exited = new Promise<number | null>((r) => child.on('exit', r));
  child.stdin.write(data.subarray(0, 1 << 20));
  const dataFile = join(new Store(root).ingestDir('int-ref'), 'data');
  for (let i = 0; i < 200 && (await stat(dataFile).then((s) => s.size, () => 0)) < 1 << 20; i++) await delay(25);
  child.kill('SIGINT');
  assert.equal(await exited, 130);
  assert.equal(err, 'dist ingest: interrupted\n');
  const active = JSON.parse((await spawnDist(['active', '--json'], { env })).stdout);
  assert.deepEqual([active.ref, active.size, active.total], ['int-ref', 1 << 20, data.length]);
});

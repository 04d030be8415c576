import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { DIST_BIN, runCli } from '../helpers/cli.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';
import { Store } from '../../lib/content/store.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** An interrupted ingest of `ref`: half of `bytes` held, its process gone. */
async function interrupted(root: string, ref: string, bytes: Buffer): Promise<void> {
  const r = await runCli(['ingest', '--expected-digest', sha(bytes), '--expected-size', String(bytes.length), ref], { root, stdin: bytes.subarray(0, bytes.length / 2) });
  assert.equal(r.status, 1, 'a short stream keeps the ingest');
}

/** A live ingest of `ref`: a dist ingest process holding half of its bytes, still reading stdin. */
async function live(t: any, root: string, ref: string): Promise<ChildProcess> {
  const child = spawn(DIST_BIN, ['ingest', '--expected-size', '100000', ref], { env: { ...process.env, DIST_ROOT: root }, stdio: ['pipe', 'ignore', 'ignore'] });
  t.after(() => child.kill('SIGKILL'));
  child.stdin.write(randomBytes(50_000));
  for (let i = 0; i < 200 && !(await refs(root)).includes(ref); i++) await delay(50);
  return child;
}

const refs = async (root: string) => (await runCli(['active', '-q'], { root })).stdout.split('\n').filter(Boolean).sort();

/** Backdates an ingest: its updatedat file and its data's mtime. */
function age(root: string, ref: string, ms: number): void {
  const dir = new Store(root).ingestDir(ref);
  const then = new Date(Date.now() - ms);
  writeFileSync(join(dir, 'updatedat'), then.toISOString());
  utimesSync(join(dir, 'data'), then, then);
}

test('abort: removes interrupted ingests and prints each; a live one is refused with one line and kept; an unknown ref is one line', async (t) => {
  const root = join(await tempDir(t), 'store');
  await interrupted(root, 'one', randomBytes(1000));
  await interrupted(root, 'two', randomBytes(1000));
  await live(t, root, 'busy');
  assert.deepEqual(await refs(root), ['busy', 'one', 'two']);
  const r = await runCli(['abort', 'one', 'busy', 'nosuch'], { root });
  assert.equal(r.status, 1);
  assert.equal(r.stdout, 'one\n');
  assert.equal(r.stderr, 'dist abort: "busy" is being written by a live process; not aborted\ndist abort: no active ingest "nosuch"\n');
  assert.deepEqual(await refs(root), ['busy', 'two']);
  const fromStdin = await runCli(['abort'], { root, stdin: 'two\n' });
  assert.deepEqual([fromStdin.status, fromStdin.stdout], [0, 'two\n']);
  assert.deepEqual(await refs(root), ['busy']);
});

test('gc: removes dead ingests whose blob is committed, and those untouched past --ingest-age (default 24h); never a live one', async (t) => {
  const root = join(await tempDir(t), 'store');
  const done = randomBytes(1000);
  await interrupted(root, `mirror/app@${sha(done)}`, done);
  // The blob committed by another route (no expected digest, so nothing is taken up).
  assert.equal((await runCli(['ingest', 'elsewhere'], { root, stdin: done })).stdout, `${sha(done)}\n`);
  await interrupted(root, 'two-days', randomBytes(1000));
  age(root, 'two-days', 48 * 3600_000);
  await interrupted(root, 'two-hours', randomBytes(1000));
  age(root, 'two-hours', 2 * 3600_000);
  const child = await live(t, root, 'busy');
  assert.deepEqual(await refs(root), ['busy', `mirror/app@${sha(done)}`, 'two-days', 'two-hours']);

  const dry = await runCli(['gc', '--dry-run'], { root });
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stderr, new RegExp(`^dist gc: would remove ingest mirror/app@${sha(done)}\ndist gc: would remove ingest two-days\n`));
  assert.equal((await refs(root)).length, 4, 'a dry run removes nothing');

  const r = await runCli(['gc'], { root });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${sha(done)}\n`, 'no name reaches the blob, and no ingest holds it any more');
  assert.deepEqual(await refs(root), ['busy', 'two-hours']);

  const young = await runCli(['gc', '--ingest-age', '1h'], { root });
  assert.equal(young.status, 0, young.stderr);
  assert.match(young.stderr, /^dist gc: removed ingest two-hours\n/);
  const all = await runCli(['gc', '--ingest-age', '0'], { root });
  assert.equal(all.status, 0, all.stderr);
  assert.deepEqual(await refs(root), ['busy'], 'the live ingest is never touched');
  const bad = await runCli(['gc', '--ingest-age', 'soon'], { root });
  assert.deepEqual([bad.status, bad.stderr.split('\n')[0]], [2, 'dist gc: --ingest-age: invalid duration "soon" (e.g. 30m, 12h, 7d)']);

  child.stdin!.end(randomBytes(50_000));
  assert.equal(await new Promise((res) => child.on('close', res)), 0);
  assert.equal((await leftovers(root)).ingest.length, 0);
});

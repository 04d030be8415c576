import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createHash } from 'node:crypto';
import { isLockLive, takeLock } from '../../lib/content/lock.js';
import { openStore } from '../../lib/content/store.js';
import { openWriter } from '../../lib/content/writer.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

test('lock: one holder at a time; released, it can be taken again', async (t) => {
  const path = join(await tempDir(t), 'lock');
  const a = takeLock(path)!;
  assert.ok(a, 'taken');
  assert.equal(takeLock(path), undefined, 'held: a second take fails');
  assert.equal(isLockLive(path), true);
  a.release();
  a.release(); // idempotent
  assert.equal(isLockLive(path), false);
  const b = takeLock(path)!;
  assert.ok(b, 'taken again');
  b.release();
});

test('lock: a lock not refreshed for over 5 s is stale and taken over', async (t) => {
  const path = join(await tempDir(t), 'lock');
  mkdirSync(path); // as a holder that was killed
  const old = new Date(Date.now() - 6000);
  utimesSync(path, old, old);
  assert.equal(isLockLive(path), false);
  const held = takeLock(path)!;
  assert.ok(held, 'the stale lock was taken over');
  assert.ok(Date.now() - statSync(path).mtimeMs < 2000, 'with a fresh mtime');
  held.release();
});

test('lock: the holder refreshes it every second, and finds out when it is taken from it', async (t) => {
  const path = join(await tempDir(t), 'lock');
  const mine = takeLock(path)!;
  const first = statSync(path).mtimeMs;
  await delay(1300);
  assert.ok(statSync(path).mtimeMs > first, 'refreshed');
  assert.equal(mine.compromised, undefined);

  // Another process removes it (thinking it stale) and makes its own.
  rmdirSync(path);
  mkdirSync(path);
  const theirs = new Date(Date.now() - 500);
  utimesSync(path, theirs, theirs);
  await delay(1300);
  const lost = mine.compromised as Error | undefined; // (narrowed to undefined above; the timer set it since)
  // proper-lockfile's timer saw an mtime that is not its own.
  assert.match(String(lost?.message), /^lock .* lost: /);
  mine.release();
  assert.ok(statSync(path).isDirectory(), 'releasing a lost lock leaves the new holder its lock');
});

test('lock: check() finds a take-over on disk before the refresh timer does', async (t) => {
  const path = join(await tempDir(t), 'lock');
  const mine = takeLock(path)!;
  assert.equal(mine.check(), undefined);
  rmdirSync(path);
  mkdirSync(path); // another process's lock, fresh
  assert.match(String(mine.check()?.message), /^lock .* lost: another process took it over$/);
  mine.release();
  assert.ok(statSync(path).isDirectory(), "the new holder's lock is left alone");
});

test('lock: a writer held up past the stale limit, whose ingest another process took over and rewrote, does not publish', async (t) => {
  const root = await tempDir(t);
  const store = await openStore(root);
  const data = Buffer.from('slow writer\n');
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const opened = await openWriter(store, { ref: 'slow', expected: digest, total: data.length });
  assert.ok(!opened.exists);
  opened.writer.write([data]);
  const [dir] = (await leftovers(root)).ingest;
  const ingest = join(root, 'ingest', dir!);
  // Another process waits until the lock is stale, takes it over, and rewrites the held
  // bytes in place: same size, other content.
  const lockUrl = new URL('../../lib/content/lock.js', import.meta.url).href;
  const rival = spawn(process.execPath, ['--input-type=module', '-e', `
    import { writeFileSync } from 'node:fs';
    const { takeLock } = await import(${JSON.stringify(lockUrl)});
    let lock;
    while (!(lock = takeLock(${JSON.stringify(join(ingest, 'lock'))}))) await new Promise((r) => setTimeout(r, 100));
    writeFileSync(${JSON.stringify(join(ingest, 'data'))}, 'SLOW WRITER\\n');
    process.stdout.write('taken');
    setTimeout(() => lock.release(), 3000);
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  const taken = new Promise<string>((resolve) => {
    let out = '';
    rival.stdout!.on('data', (c) => (out += c));
    rival.on('close', () => resolve(out));
  });
  // This writer is held up: the event loop blocks (as under a long synchronous write to a
  // slow disk), so proper-lockfile's refresh cannot run, until the rival has taken over.
  const flag = new Int32Array(new SharedArrayBuffer(4));
  while (!existsSync(join(ingest, 'data')) || readFileSync(join(ingest, 'data'), 'utf8') !== 'SLOW WRITER\n') Atomics.wait(flag, 0, 0, 100);
  await assert.rejects(opened.writer.commit(), (err: Error & { code?: string }) => err.code === 'ELOCKED' && /lock .* lost: .*; the ingest is kept for resume$/.test(err.message));
  assert.equal(await taken, 'taken');
  const left = await leftovers(root);
  assert.deepEqual(left.blobs, [], 'nothing published');
});

test('lock: the refresh timer never keeps a process alive, and the lock is released at exit', () => {
  const script = `import('${new URL('../../lib/content/lock.js', import.meta.url).href}').then((m) => { m.takeLock(process.argv[1]); })`;
  const dir = join(process.env.TMPDIR ?? '/tmp', `dist-lock-exit-${process.pid}`);
  // A ref'd timer would keep it running until the timeout kills it.
  const r = spawnSync(process.execPath, ['-e', script, dir], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, null, 'the process ended by itself');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(isLockLive(dir), false);
});

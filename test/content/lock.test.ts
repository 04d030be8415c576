import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmdirSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { isLockLive, takeLock } from '../../lib/content/lock.js';
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
  assert.match(String(lost?.message), /lock .* lost: another process took it over/);
  mine.release();
  assert.ok(statSync(path).isDirectory(), 'releasing a lost lock leaves the new holder its lock');
});

test('lock: the refresh timer never keeps a process alive', () => {
  const script = `import('${new URL('../../lib/content/lock.js', import.meta.url).href}').then((m) => { m.takeLock(process.argv[1]); })`;
  const dir = join(process.env.TMPDIR ?? '/tmp', `dist-lock-exit-${process.pid}`);
  const started = Date.now();
  const r = spawnSync(process.execPath, ['-e', script, dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(Date.now() - started < 900, 'exited before the first refresh');
  rmdirSync(dir);
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DIST_BIN } from '../helpers/cli.js';
import { fixChecksum, makeTar } from '../helpers/tarfixture.js';
import { tempDir } from '../helpers/tmp.js';

const GIB = 1 << 30;

/** Peak RSS (VmHWM) of a live process, in KiB. */
function peakKiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

test('flat memory: a 2 GiB layer streams through dist apply; peak RSS stays small', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'rootfs');
  const chunk = randomBytes(1 << 20);
  const child = spawn(DIST_BIN, ['apply', root], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  let peak = 0;
  const poll = setInterval(() => (peak = Math.max(peak, peakKiB(child.pid!))), 50);
  const hash = createHash('sha256');
  const send = async (b: Buffer) => {
    hash.update(b);
    if (!child.stdin.write(b)) await new Promise((r) => child.stdin.once('drain', r));
  };
  // Two 1 GiB files: a header, then the body generated as it is written; never held whole.
  for (const name of ['big-1', 'big-2']) {
    const header = makeTar([{ name, type: 'file', data: '' }], { end: false });
    header.write(`${GIB.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
    fixChecksum(header);
    await send(header.subarray(0, 512));
    for (let i = 0; i < 1024; i++) await send(chunk);
  }
  await send(Buffer.alloc(1024));
  child.stdin.end();
  const status = await new Promise<number>((r) => child.on('close', (code) => r(code ?? 1)));
  clearInterval(poll);
  assert.equal(status, 0, stderr);
  assert.equal(stdout, `sha256:${hash.digest('hex')}\n`);
  assert.equal(statSync(join(root, 'big-1')).size, GIB);
  assert.equal(statSync(join(root, 'big-2')).size, GIB);
  const peakMiB = peak / 1024;
  t.diagnostic(`dist apply of a 2 GiB layer: peak RSS ${peakMiB.toFixed(1)} MiB`);
  assert.ok(peakMiB > 10 && peakMiB < 160, `peak RSS ${peakMiB.toFixed(1)} MiB`);
});

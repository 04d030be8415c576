import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { DIST_BIN, runCli } from '../helpers/cli.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

/** A stdin that gives `bytes`, then is destroyed without an error: a premature close, not an EOF. */
function cutStdin(bytes: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(bytes);
      } else {
        setImmediate(() => this.destroy());
      }
    },
  });
}

test('EPIPE: a premature close of stdin is an error (one line, exit 1, the ingest kept), not a quiet exit 0', async (t) => {
  const root = join(await tempDir(t), 'store');
  const r = await runCli(['ingest', '--expected-size', '200000', 'cut'], { root, stdin: cutStdin(randomBytes(70_000)) });
  assert.equal(r.status, 1, 'a cut stdin must not pass for success');
  assert.equal(r.stderr.split('\n').length, 2, r.stderr);
  assert.match(r.stderr, /^dist ingest: .*Premature close/);
  assert.deepEqual((await leftovers(root)).blobs, []);
  assert.equal((await runCli(['active', '-q'], { root })).stdout, 'cut\n', 'kept for resume');

  const dir = await tempDir(t);
  const a = await runCli(['apply', dir], { stdin: cutStdin(Buffer.alloc(1536)) });
  assert.equal(a.status, 1, 'a layer cut short is not applied successfully');
  assert.match(a.stderr, /^dist apply: /);
});

test('EPIPE: when our stdout reader goes away (dist get BIG | head -c 1) dist exits 0, quietly', async (t) => {
  const root = join(await tempDir(t), 'store');
  const digest = (await runCli(['ingest', 'big'], { root, stdin: randomBytes(4 << 20) })).stdout.trim();
  const r = spawnSync('bash', ['-c', `"${DIST_BIN}" --root "${root}" get ${digest} | head -c 1 | wc -c; echo "\${PIPESTATUS[0]}"`], { encoding: 'utf8' });
  assert.equal(r.stderr, '');
  assert.deepEqual(r.stdout.trim().split(/\s+/), ['1', '0']);
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { DIST_BIN, spawnDist } from '../helpers/cli.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const PROCS = 16;
const SIZE = 64 * 1024 * 1024;

/** Runs bin/dist with a file streamed into its stdin (as a pipe, like `fetch | ingest`). */
function ingestFrom(file: string, args: string[], root: string): Promise<{ status: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(DIST_BIN, args, { env: { ...process.env, DIST_ROOT: root }, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    child.stdin.on('error', () => {}); // an ingest that finds the blob exits without reading
    createReadStream(file).on('error', reject).pipe(child.stdin);
    child.on('error', reject);
    child.on('close', (code) => resolve({ status: code ?? 1, stderr }));
  });
}

async function fixture(t: any): Promise<{ dir: string; file: string; digest: string }> {
  const dir = await tempDir(t);
  const data = randomBytes(SIZE);
  const file = join(dir, 'blob');
  await writeFile(file, data);
  return { dir, file, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
}

for (const mode of ['the same ref', 'different refs'] as const) {
  test(`concurrency: ${PROCS} processes ingest one 64 MiB stream under ${mode}`, async (t) => {
    const { dir, file, digest } = await fixture(t);
    const root = join(dir, 'store');
    const runs = await Promise.all(
      Array.from({ length: PROCS }, (_, i) =>
        ingestFrom(file, ['ingest', '--expected-digest', digest, '--expected-size', String(SIZE), mode === 'the same ref' ? 'shared-ref' : `ref-${i}`], root),
      ),
    );
    for (const r of runs) assert.deepEqual(r, { status: 0, stderr: '' });
    assert.deepEqual(await leftovers(root), { blobs: [digest], ingest: [] });
    const stored = await readFile(join(root, 'blobs', 'sha256', digest.slice(7)));
    assert.equal(`sha256:${createHash('sha256').update(stored).digest('hex')}`, digest);
    const list = await spawnDist(['list', '-q'], { env: { ...process.env, DIST_ROOT: root } });
    assert.equal(list.stdout, `${digest}\n`);
  });
}

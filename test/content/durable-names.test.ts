import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DIST_BIN, requireTool, runCli, spawnCapture } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * What this proves: in a real dist process (traced with strace), the rename that publishes
 * index.json is followed by an fsync of a descriptor opened on the store's root directory,
 * so the new name survives a power cut. It cannot prove the disk honours fsync.
 */
test('names: index.json is renamed into place and then the store directory is fsynced (strace of dist images tag)', async (t) => {
  requireTool('strace');
  const root = join(await tempDir(t), 'store');
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'0'.repeat(64)}`, size: 2 }, layers: [] });
  const digest = (await runCli(['ingest', 'm'], { root, stdin: manifest })).stdout.trim();
  const log = join(root, '..', 'strace.log');
  const r = await spawnCapture('strace', ['-f', '-qq', '-e', 'trace=openat,rename,renameat,renameat2,fsync,fdatasync', '-o', log, DIST_BIN, 'images', 'tag', digest, 'app:1'], { env: { ...process.env, DIST_ROOT: root } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(readFileSync(join(root, 'index.json'), 'utf8'), /"app:1"/);
  const lines = readFileSync(log, 'utf8').split('\n');
  const renamed = lines.findIndex((l) => /rename\w*\(.*index\.json\.tmp-[^"]*", .*"[^"]*\/index\.json"/.test(l));
  assert.ok(renamed >= 0, `no rename of index.json in the trace:\n${lines.join('\n')}`);
  const after = lines.slice(renamed + 1);
  const opened = after.map((l) => new RegExp(`openat\\(AT_FDCWD, "${root}/?", [^)]*O_RDONLY[^)]*\\) = (\\d+)`).exec(l)?.[1]).find(Boolean);
  assert.ok(opened, `the store directory is not opened after the rename:\n${after.join('\n')}`);
  assert.ok(after.some((l) => new RegExp(`f(data)?sync\\(${opened}\\)\\s+= 0`).test(l)), `no fsync of the store directory after the rename:\n${after.join('\n')}`);
});

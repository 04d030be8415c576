// lib/archive/tar.ts swaps tar-stream's PAX decoder (no public API hands over the record
// bytes); the swap checks the installed release when it loads, so a tar-stream that moved
// that code fails with one line instead of applying layers with mangled names.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { TAR_STREAM_VERSION } from '../../lib/archive/tar.js';
import { REPO, spawnCapture } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

/** A copy of the built lib/ beside a node_modules whose tar-stream `change` alters. */
async function withTarStream(t: any, change: (dir: string) => void): Promise<{ status: number; stderr: string }> {
  const dir = await tempDir(t);
  cpSync(join(REPO, 'out', 'lib'), join(dir, 'lib'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }');
  const modules = join(dir, 'node_modules');
  mkdirSync(modules);
  for (const name of readdirSync(join(REPO, 'node_modules'))) {
    if (name !== 'tar-stream' && !name.startsWith('.')) symlinkSync(join(REPO, 'node_modules', name), join(modules, name));
  }
  cpSync(join(REPO, 'node_modules', 'tar-stream'), join(modules, 'tar-stream'), { recursive: true });
  change(join(modules, 'tar-stream'));
  const probe = `import(${JSON.stringify(join(dir, 'lib', 'archive', 'tar.js'))}).then(() => console.log('loaded'), (e) => { console.error(e.message); process.exit(1); })`;
  return spawnCapture(process.execPath, ['-e', probe]);
}

test('tar-stream: the pinned release loads and keeps PAX bytes', async (t) => {
  assert.equal(JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).dependencies['tar-stream'], TAR_STREAM_VERSION);
  const r = await withTarStream(t, () => {});
  assert.deepEqual([r.status, r.stderr], [0, '']);
});

test('tar-stream: another release, or one that decodes PAX records elsewhere, fails with one line', async (t) => {
  const other = await withTarStream(t, (dir) => {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...pkg, version: '3.9.0' }));
  });
  assert.equal(other.status, 1);
  assert.equal(other.stderr, `tar-stream 3.9.0 is installed, but dist needs exactly ${TAR_STREAM_VERSION} to read and write PAX records byte for byte; reinstall dist\n`);
  const moved = await withTarStream(t, (dir) => {
    const file = join(dir, 'extract.js');
    writeFileSync(file, readFileSync(file, 'utf8').replaceAll('headers.decodePax(buf)', 'decodePaxRecords(buf)'));
  });
  assert.equal(moved.status, 1);
  assert.match(moved.stderr, /^tar-stream 3\.2\.2 is installed, but dist needs exactly/);
});

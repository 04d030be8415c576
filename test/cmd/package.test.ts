// The package as users get it: npm pack, then npm install -g of the tarball into a temporary
// prefix, then the installed `dist` (a symlink npm makes in <prefix>/bin) pulls for real.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO, spawnCapture } from '../helpers/cli.js';
import { buildImage } from '../helpers/image.js';
import { fixtureDir, pushFromLayout, startRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';

test('package: npm pack, npm install -g of the tarball, then dist --version and a real dist pull from the prefix', async (t) => {
  const dir = await tempDir(t);
  const packed = await spawnCapture('npm', ['pack', '--pack-destination', dir, '--loglevel=error'], { cwd: REPO });
  assert.equal(packed.status, 0, packed.stderr);
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  assert.ok(tarball, packed.stdout);
  const prefix = join(dir, 'prefix');
  // Dependencies come from the npm registry (or npm's cache, when it has them).
  const installed = await spawnCapture('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', join(dir, tarball)]);
  assert.equal(installed.status, 0, installed.stderr);
  const dist = join(prefix, 'bin', 'dist');
  const env = { PATH: `${join(prefix, 'bin')}:${process.env.PATH}`, HOME: dir };

  const version = await spawnCapture('dist', ['--version'], { env });
  assert.deepEqual([version.status, version.stdout, version.stderr], [0, `${JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version}\n`, '']);

  const reg = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, 'v1', [{ 'etc/': null, 'etc/hello': 'from the installed package\n' }]);
  await pushFromLayout(reg, src, 'team/app', 'v1', img.manifest, img.mediaType);
  const root = join(dir, 'store');
  const pulled = await spawnCapture(dist, ['--root', root, 'pull', `${reg.host}/team/app:v1`], { env });
  assert.deepEqual([pulled.status, pulled.stdout, pulled.stderr], [0, `${img.manifest}\n`, '']);
  const unpacked = await spawnCapture(dist, ['--root', root, 'unpack', `${reg.host}/team/app:v1`, join(dir, 'rootfs')], { env });
  assert.equal(unpacked.status, 0, unpacked.stderr);
  assert.equal(readFileSync(join(dir, 'rootfs', 'etc', 'hello'), 'utf8'), 'from the installed package\n');
});

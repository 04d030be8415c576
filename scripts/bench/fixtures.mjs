// Bench fixtures in a local registry (Debian's docker-registry on a free loopback port):
//   large:  8 layers of 64 MiB, incompressible (uncompressed tar layers of random bytes)
//   many:   40 small gzip layers
//   debian: a real Debian rootfs (debootstrap --variant=minbase, cached), one gzip layer,
//           plus a second layer that deletes and replaces files
// Layouts are cached under bench/work/; the registry is started fresh each run.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage } from '../../out/test/helpers/image.js';
import { pushFromLayout, startRegistry } from '../../out/test/helpers/registry.js';
import { makeTar } from '../../out/test/helpers/tarfixture.js';

export async function fixtures(work, hooks) {
  const layouts = join(work, 'layouts');
  const metaPath = join(work, 'fixtures.json');
  let meta = existsSync(metaPath) ? JSON.parse(readFileSync(metaPath, 'utf8')) : undefined;
  if (!meta) {
    mkdirSync(layouts, { recursive: true });
    meta = {};
    process.stderr.write('bench: building the large image (8 x 64 MiB)\n');
    const large = [];
    for (let i = 0; i < 8; i++) large.push({ files: { [`data/blob-${i}.bin`]: randomBytes(64 << 20) }, compression: 'none' });
    meta.large = await buildImage(join(layouts, 'large'), '1', large);
    process.stderr.write('bench: building the many-small-layers image (40 layers)\n');
    const many = [];
    for (let i = 0; i < 40; i++) many.push({ files: { [`layer-${i}/file.txt`]: `layer ${i}\n`.repeat(2000), [`layer-${i}/rand.bin`]: randomBytes(32 << 10) } });
    meta.many = await buildImage(join(layouts, 'many'), '1', many);
    meta.debian = await debianImage(work, join(layouts, 'debian'));
    for (const k of Object.keys(meta)) delete meta[k].manifestBytes;
    writeFileSync(metaPath, JSON.stringify(meta));
  }
  const reg = await startRegistry(hooks);
  for (const name of ['large', 'many', 'debian']) {
    await pushFromLayout(reg, join(layouts, name), `bench/${name}`, '1', meta[name].manifest, meta[name].mediaType);
  }
  return { reg, meta, layouts };
}

async function debianImage(work, layout) {
  const rootfs = join(work, 'debian-rootfs');
  let source = 'debootstrap --variant=minbase bookworm';
  if (!existsSync(join(rootfs, 'etc', 'debian_version'))) {
    process.stderr.write('bench: debootstrap --variant=minbase bookworm (one time)\n');
    try {
      execFileSync('debootstrap', ['--variant=minbase', 'bookworm', rootfs, 'http://deb.debian.org/debian'], { stdio: 'ignore' });
    } catch {
      throw new Error('debootstrap failed: make bench needs Debian packages (apt-get install debootstrap) and the Debian mirror');
    }
  }
  const base = execFileSync('tar', ['--numeric-owner', '--xattrs', '--sort=name', '-C', rootfs, '-cf', '-', '.'], { maxBuffer: 1 << 30 });
  const upper = makeTar([
    { name: 'etc/.wh.motd', type: 'file' },
    { name: 'usr/share/doc/.wh..wh..opq', type: 'file' },
    { name: 'usr/share/doc/README', type: 'file', data: 'docs removed\n' },
    { name: 'etc/hostname', type: 'file', data: 'bench\n' },
  ]);
  const img = await buildImage(layout, '1', [{ tar: base, compression: 'gzip' }, { tar: upper, compression: 'gzip' }]);
  img.source = source;
  return img;
}

// make demo: a local registry (Debian's docker-registry on a free loopback port) holding a
// sample image built from what this machine has (busybox-static), then the seed's pipelines,
// then dist pull and dist unpack, ending with a rootfs on disk in ./demo/rootfs.
import { execSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage } from '../out/test/helpers/image.js';
import { pushFromLayout, startRegistry } from '../out/test/helpers/registry.js';
import { busyboxRootfs } from '../out/test/helpers/rootfs.js';
import { makeTar } from '../out/test/helpers/tarfixture.js';
import { writeFileSync } from 'node:fs';
import { containers } from '../out/test/helpers/podman.js';

const repo = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const demo = join(repo, 'demo');
const hooks = [];
const DOCKER_V2 = 'application/vnd.docker.distribution.manifest.v2+json';

function run(cmd) {
  process.stdout.write(`\n\x1b[1m$ ${cmd}\x1b[0m\n`);
  execSync(cmd, { cwd: demo, stdio: 'inherit', shell: '/bin/bash', env: { ...process.env, PATH: `${join(repo, 'bin')}:${process.env.PATH}`, DIST_ROOT: '' } });
}

async function main() {
  rmSync(demo, { recursive: true, force: true });
  mkdirSync(demo, { recursive: true });
  const reg = await startRegistry({ after: (fn) => hooks.push(fn) });
  const R = reg.host;
  process.stdout.write(`registry: docker-registry on ${R}\n`);

  // The sample image: a real busybox rootfs, then an app layer that changes it.
  const base = busyboxRootfs(join(demo, '.build', 'base'));
  const app = makeTar([
    { name: 'etc/motd', type: 'file', data: 'Hello from a rootfs that dist fetched, ingested and applied.\n' },
    { name: 'etc/.wh.hostname', type: 'file' },
    { name: 'app/', type: 'dir' },
    { name: 'app/hello', type: 'file', mode: 0o755, data: '#!/bin/sh\necho "hello from $(cat /etc/os-release 2>/dev/null || echo busybox)"\n' },
  ]);
  const img = await buildImage(join(demo, '.build', 'layout'), 'latest', [{ tar: base, compression: 'gzip' }, { tar: app, compression: 'gzip' }], { docker: true });
  await pushFromLayout(reg, join(demo, '.build', 'layout'), 'demo/busybox', 'latest', img.manifest, img.mediaType);
  // The base alone, for the device story (section 4): the same busybox layer, byte for byte.
  const baseImg = await buildImage(join(demo, '.build', 'layout'), 'base', [{ tar: base, compression: 'gzip' }], { docker: true });
  await pushFromLayout(reg, join(demo, '.build', 'layout'), 'demo/base', 'latest', baseImg.manifest, baseImg.mediaType);
  rmSync(join(demo, '.build'), { recursive: true, force: true });
  process.stdout.write(`pushed ${R}/demo/busybox:latest (${img.layers.length} layers)\n`);

  process.stdout.write('\n# 1. The seed pipeline: a parallel layer download into ./.content\n');
  run(`dist fetch ${R}/demo/busybox latest mediatype:${DOCKER_V2} | jq -r '.layers[] | "dist fetch ${R}/demo/busybox "+.digest + "| dist ingest --expected-digest "+.digest+" --expected-size "+(.size | tostring) +" ${R}/demo/busybox@"+.digest' | xargs -I{} -P10 -n1 sh -c "{}"`);
  run('dist list');
  run('dist active');

  process.stdout.write('\n# 2. The seed apply pipeline: each layer, in order, with dist path -n\n');
  run(`dist fetch ${R}/demo/busybox latest mediatype:${DOCKER_V2} | jq -r '.layers[] | "dist apply ./rootfs-seed < $(dist path -n "+.digest+")"' | xargs -I{} -n1 sh -c "{}"`);

  process.stdout.write('\n# 3. The same with the image commands: pull (names it in index.json), then unpack\n');
  run(`dist pull ${R}/demo/busybox:latest`);
  run('dist images');
  run(`dist unpack ${R}/demo/busybox:latest ./rootfs`);
  const listing = (d) => `(cd ${d} && find . -printf '%p %y %m %U:%G %s %l\\n' | sort)`;
  run(`diff <${listing('rootfs-seed')} <${listing('rootfs')} && echo "rootfs-seed and rootfs are identical (paths, types, modes, owners, sizes, link targets)"`);
  run('ls -l rootfs rootfs/app && cat rootfs/etc/motd');
  if (process.getuid?.() === 0) run('chroot rootfs /app/hello');

  process.stdout.write('\n# 4. A device no registry reaches: it holds the base; it gets only what it lacks\n');
  run(`dist pull ${R}/demo/base:latest && dist export ${R}/demo/base:latest | dist --root device import`);
  run('dist --root device list');
  run(`dist export ${R}/demo/busybox:latest --exclude-from <(dist --root device list -q) -o app-delta.tar`);
  run(`dist export ${R}/demo/busybox:latest -o app-full.tar && ls -l app-delta.tar app-full.tar && tar tvf app-delta.tar`);
  run('dist --root device import app-delta.tar');
  run(`dist --root device unpack ${R}/demo/busybox:latest ./device-rootfs && cat device-rootfs/etc/motd`);
  await buildDemo();
  process.stdout.write(`\nDone: the rootfs is in ${join(demo, 'rootfs')} (and the store, an OCI layout, in ${join(demo, '.content')}).\n`);
}

// 4. Making images: a genoci-style spec (the seed's cirros example, on busybox), built into the
// store and run by podman (vfs storage, default_ulimits = [] as this sandbox needs).
async function buildDemo() {
  process.stdout.write('\n# 5. dist build: a busybox rootfs expanded from a tarball, then a target that runs a script and sets an entrypoint\n');
  const dir = join(demo, 'build');
  busyboxRootfs(join(dir, 'rootfs'));
  execSync(`tar --numeric-owner -C ${join(dir, 'rootfs')} -czf ${join(dir, 'busybox.tar.gz')} . && rm -rf ${join(dir, 'rootfs')}`);
  writeFileSync(
    join(dir, 'busybox.yaml'),
    ['busybox:', '  base: empty', '  expand: ./busybox.tar.gz', 'modified:', '  base: busybox', '  run: |', '    echo "Hello, world" > /hw', '  entrypoint: /bin/cat /hw', ''].join('\n'),
  );
  run('cat build/busybox.yaml');
  run('dist --root build/oci build build/busybox.yaml');
  run('dist --root build/oci build build/busybox.yaml   # again: unchanged targets reuse their layers');
  run('dist --root build/oci images');
  const c = await containers({ after: (fn) => hooks.push(fn) });
  process.stdout.write(`\n\x1b[1m$ podman run --rm --network=none oci:${join(dir, 'oci')}:modified\x1b[0m\n`);
  execSync(`podman run --rm --network=none oci:${join(dir, 'oci')}:modified`, { env: c.env, stdio: ['ignore', 'inherit', 'ignore'] });
}

main()
  .catch((err) => {
    process.stderr.write(`demo: ${err.message}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const fn of hooks.reverse()) await fn();
  });

// Bench group "build": making a layer from a real change to the Debian rootfs (`apt-get install`
// of perl-modules in a chroot: some 1,700 files, 18 MB), as dist commit, umoci repack (genoci's
// engine) and buildah commit (vfs driver) each do it; and dist diff alone beside `tar -c` of
// the changed files.
//
// The change is made once: the base image is `dist commit` of the debootstrapped rootfs, `dist
// unpack` gives the tree a user would change, and apt-get installs into it. Each peer then gets
// the same change in its own working tree, untimed (umoci unpack / buildah from, then `dist
// apply` of the change), and only the commit is timed. dist commits the changed tree against
// its base rootfs cache (unpacked once per ChainID, as a second commit on a base finds it).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { aptInstall } from '../../out/test/helpers/debian.js';
import { containers } from '../../out/test/helpers/podman.js';

const sh = (cmd, opts = {}) => execFileSync('bash', ['-o', 'pipefail', '-c', cmd], { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28, ...opts }).toString();

export default async function build(ctx) {
  const { DIST, work, scratch, hook, hyperfine, ratio, fmt, peakRss, cpuSeconds } = ctx;
  const rootfs = join(work, 'debian-rootfs');
  if (!existsSync(join(rootfs, 'etc', 'debian_version'))) throw new Error(`bench build: no debootstrapped rootfs in ${rootfs} (scripts/bench/fixtures.mjs makes it)`);
  const debs = readdirSync('/var/cache/apt/archives').filter((f) => /^perl-modules-5\.36_.*\.deb$/.test(f));
  let deb = debs.length ? join('/var/cache/apt/archives', debs[0]) : undefined;
  // A tmpfs directory of this run's own: the shared scratch dir is wiped whenever any bench in
  // another worktree starts, and this group's setup takes minutes.
  const dir = join(scratch.replace(/\/[^/]*$/, ''), `dist-build-bench-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  hook.after(() => rmSync(dir, { recursive: true, force: true }));
  if (!deb) {
    process.stderr.write('bench build: apt-get download perl-modules-5.36 (one time)\n');
    sh(`cd ${dir} && apt-get download -qq perl-modules-5.36`);
    deb = join(dir, readdirSync(dir).find((f) => f.endsWith('.deb')));
  }
  const store = join(dir, 'store');
  const D = `${DIST} --root ${store}`;
  process.stderr.write('bench build: base image (dist commit of the Debian rootfs), the change (apt-get install perl-modules in a chroot)\n');
  sh(`${D} commit ${rootfs} --base empty --name debian`);
  const changed = join(dir, 'changed');
  sh(`${D} unpack debian ${changed}`);
  aptInstall(changed, deb);
  // A first commit on the base unpacks it into the ChainID cache, as any later one finds it.
  sh(`${D} commit ${changed} --base debian --name debian-perl`);
  const base = join(store, 'build', 'rootfs', readdirSync(join(store, 'build', 'rootfs')).find((d) => d.startsWith('sha256-')));
  const change = join(dir, 'change.tar');
  sh(`${DIST} diff ${base} ${changed} > ${change}`);
  const files = sh(`tar -tf ${change} | grep -v '/\\.wh\\.' | grep -v '^\\.wh\\.' || true`).trim().split('\n');
  const list = join(dir, 'changed-files.txt');
  writeFileSync(list, `${files.join('\n')}\n`);

  // umoci works on its own copy of the layout (repack adds blobs and a name to it).
  const layout = join(dir, 'layout');
  sh(`mkdir -p ${layout} && cp -a ${store}/blobs ${store}/index.json ${store}/oci-layout ${layout}/`);
  const bundle = join(dir, 'bundle');
  // buildah on its own vfs storage, with the image pulled in once (untimed).
  const c = await containers(hook);
  const benv = `env ${['CONTAINERS_STORAGE_CONF', 'CONTAINERS_CONF', 'CONTAINERS_REGISTRIES_CONF', 'XDG_RUNTIME_DIR', 'TMPDIR'].map((k) => `${k}=${c.env[k]}`).join(' ')}`;
  sh(`${benv} buildah pull -q oci:${layout}:debian >/dev/null`);

  const cmds = {
    'dist commit': `${D} commit ${changed} --base debian --name debian-perl > /dev/null`,
    'umoci repack': `umoci repack --image ${layout}:debian-perl ${bundle}`,
    'buildah commit': `${benv} buildah commit -q work debian-perl > /dev/null`,
    'dist diff': `${DIST} diff ${base} ${changed} > ${dir}/diff.tar 2>/dev/null`,
    'tar -c': `tar --numeric-owner --no-recursion -C ${changed} -cf ${dir}/tar.tar -T ${list}`,
  };
  const prepare = {
    [cmds['umoci repack']]: `rm -rf ${bundle} && umoci unpack --image ${layout}:debian ${bundle} >/dev/null && ${DIST} apply ${bundle}/rootfs < ${change} >/dev/null && sync`,
    [cmds['buildah commit']]: `${benv} bash -c 'buildah rm --all >/dev/null; buildah rmi -f debian-perl >/dev/null 2>&1; buildah from -q --name work oci:${layout}:debian >/dev/null && ${DIST} apply "$(buildah mount work)" < ${change} >/dev/null' && sync`,
    default: 'sync',
  };
  const r = hyperfine('build-commit', cmds, { prepare });
  // CPU seconds too (user + system of every process a command starts, bash's `times`; median
  // of 3): on this shared 2-core machine the wall times swing with everyone else's load.
  const cpu = {};
  for (const k of ['dist commit', 'umoci repack', 'buildah commit']) cpu[k] = cpuSeconds(cmds[k], prepare[cmds[k]] ?? prepare.default).total;
  const rss = await peakRss([DIST, '--root', store, 'commit', changed, '--base', 'debian', '--name', 'debian-perl']);
  sh(`${benv} buildah rm --all >/dev/null; true`);
  const what = `commit of apt-get install perl-modules on Debian (${files.length} entries)`;
  return [
    [what, 'dist commit', fmt(r['dist commit']), 'dist/umoci repack', ratio(r['dist commit'], r['umoci repack']).toFixed(2)],
    [what, 'umoci repack', fmt(r['umoci repack']), '', ''],
    [what, 'buildah commit (vfs)', fmt(r['buildah commit']), 'dist/buildah commit', ratio(r['dist commit'], r['buildah commit']).toFixed(2)],
    [what, 'CPU seconds: dist commit', `${cpu['dist commit'].toFixed(2)} s`, 'dist/umoci repack (CPU)', (cpu['dist commit'] / cpu['umoci repack']).toFixed(2)],
    [what, 'CPU seconds: umoci repack', `${cpu['umoci repack'].toFixed(2)} s`, 'dist/buildah commit (CPU)', (cpu['dist commit'] / cpu['buildah commit']).toFixed(2)],
    [what, 'CPU seconds: buildah commit', `${cpu['buildah commit'].toFixed(2)} s`, '', ''],
    [what, 'dist commit peak RSS', `${rss.toFixed(0)} MiB`, '', ''],
    ['diff of that change', 'dist diff', fmt(r['dist diff']), 'dist diff/tar -c', ratio(r['dist diff'], r['tar -c']).toFixed(2)],
    ['diff of that change', 'tar -c of the changed files', fmt(r['tar -c']), '', ''],
  ];
}

// Bench group "transfer": dist export beside `skopeo copy oci:… oci-archive:`, dist import beside
// `podman load` (vfs storage), on the Debian image and on 8 x 64 MiB; the bytes of a delta
// archive beside the full one; peak RSS of export and import on the large image. Everything
// reads and writes the same tmpfs (ctx.scratch), podman's storage included.
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { containers } from '../../out/test/helpers/podman.js';

export default async function transfer(ctx) {
  const { DIST, R, meta, hyperfine, ratio, fmt, peakRss } = ctx;
  // A directory of its own on the same tmpfs: ctx.scratch has a fixed path, which every run
  // (another checkout's bench too) clears when it starts, podman's storage included.
  const scratch = `${ctx.scratch}-transfer-${process.pid}`;
  mkdirSync(scratch, { recursive: true });
  ctx.hook.after(() => rmSync(scratch, { recursive: true, force: true }));
  // podman's storage on the same tmpfs as dist's store: containers() makes it under $TMPDIR.
  const tmpdir = process.env.TMPDIR;
  process.env.TMPDIR = scratch;
  const pod = await containers(ctx.hook);
  if (tmpdir === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = tmpdir;
  // Locks of its own: the default shm lock (/dev/shm/libpod_lock) is shared with every other
  // podman on the machine, and loads failed (status 125) now and then while other checkouts'
  // tests reset theirs. The [engine] table is the last one in the file containers() writes.
  appendFileSync(pod.env.CONTAINERS_CONF, 'lock_type = "file"\n');
  const podEnv = ['CONTAINERS_STORAGE_CONF', 'CONTAINERS_CONF', 'CONTAINERS_REGISTRIES_CONF', 'XDG_RUNTIME_DIR', 'TMPDIR'].map((k) => `${k}=${pod.env[k]}`).join(' ');
  const podman = `env ${podEnv} podman`;

  const rows = [];
  for (const image of ['debian', 'large']) {
    const what = image === 'debian' ? `Debian (${meta.debian.source ?? 'rootfs'})` : '8 x 64 MiB';
    const src = join(scratch, `tx-src-${image}`);
    execFileSync(DIST, ['--root', src, 'pull', `${R}/bench/${image}:1`], { stdio: 'ignore' });
    execFileSync(DIST, ['--root', src, 'images', 'tag', `${R}/bench/${image}:1`, 'bench'], { stdio: 'ignore' });
    const out = join(scratch, `tx-out-${image}`);
    const ex = hyperfine(`export-${image}`, {
      'dist export': `${DIST} --root ${src} export bench -o ${out}.dist.tar`,
      'skopeo copy oci-archive:': `skopeo copy --quiet oci:${src}:bench oci-archive:${out}.skopeo.tar`,
    }, { prepare: { default: `rm -f ${out}.dist.tar ${out}.skopeo.tar; sync` } });
    rows.push([`export ${what}`, 'dist export -o FILE', fmt(ex['dist export']), '', '']);
    rows.push(['', 'skopeo copy oci:… oci-archive:', fmt(ex['skopeo copy oci-archive:']), 'dist/skopeo', ratio(ex['dist export'], ex['skopeo copy oci-archive:']).toFixed(2)]);

    const archive = join(scratch, `tx-in-${image}.tar`);
    execFileSync(DIST, ['--root', src, 'export', 'bench', '-o', archive]);
    const imp = join(scratch, `tx-imp-${image}`);
    const im = hyperfine(`import-${image}`, {
      'dist import': `${DIST} --root ${imp} import ${archive} > /dev/null`,
      'podman load': `${podman} load -q -i ${archive} > /dev/null 2>> ${scratch}/podman.log`,
    }, { prepare: { [`${DIST} --root ${imp} import ${archive} > /dev/null`]: `rm -rf ${imp}; sync`, default: `${podman} rmi -a -f > /dev/null 2>&1; sync` } });
    rows.push([`import ${what}`, 'dist import FILE', fmt(im['dist import']), '', '']);
    rows.push(['', 'podman load -i FILE (vfs)', fmt(im['podman load']), 'dist/podman', ratio(im['dist import'], im['podman load']).toFixed(2)]);

    // A device that holds the base: for Debian its rootfs layer, for the large image 7 of 8.
    const held = image === 'debian' ? meta.debian.layers.slice(0, 1) : meta.large.layers.slice(0, 7);
    const excludes = join(scratch, `tx-held-${image}`);
    writeFileSync(excludes, held.map((d) => `${d}\n`).join(''));
    const delta = join(scratch, `tx-delta-${image}.tar`);
    execFileSync(DIST, ['--root', src, 'export', 'bench', '--exclude-from', excludes, '-o', delta]);
    const full = statSync(archive).size;
    const small = statSync(delta).size;
    rows.push([`delta archive ${what}`, `full: ${full} bytes; delta (device holds ${held.length} layer${held.length > 1 ? 's' : ''}): ${small} bytes`, '', 'delta/full', (small / full).toFixed(4)]);

    if (image === 'large') {
      const exportRss = await peakRss([DIST, '--root', src, 'export', 'bench', '-o', `${out}.rss.tar`]);
      execFileSync('rm', ['-rf', `${imp}-rss`]);
      const importRss = await peakRss([DIST, '--root', `${imp}-rss`, 'import', archive]);
      rows.push(['peak RSS, large image (512 MiB)', 'dist export', `${exportRss.toFixed(0)} MiB`, '', '']);
      rows.push(['', 'dist import', `${importRss.toFixed(0)} MiB`, '', '']);
    }
    execFileSync('rm', ['-rf', src, imp, `${imp}-rss`, archive, delta, `${out}.dist.tar`, `${out}.skopeo.tar`, `${out}.rss.tar`]);
  }
  return rows;
}

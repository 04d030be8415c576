// make bench group: push and copy of the large image (8 x 64 MiB) between loopback registries.
//   dist push (from the store) vs skopeo copy oci:<layout> docker://  (each to a fresh registry)
//   dist copy vs skopeo copy --all docker:// docker://                 (each to a fresh registry)
// "Fresh": the target registry's storage is removed before every run (distribution keeps no
// cache in this config), so every run uploads all 512 MiB. skopeo gets --preserve-digests:
// without it, it gzips the uncompressed layers on the way (another image, and ~10 x the CPU).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startRegistry } from '../../out/test/helpers/registry.js';

export default async function pushGroup(ctx) {
  const { DIST, R, work, scratch, hook, hyperfine, peakRss, ratio, fmt } = ctx;
  const forDist = await startRegistry(hook, { discardLog: true });
  const forSkopeo = await startRegistry(hook, { discardLog: true });
  const forFloor = await startRegistry(hook, { discardLog: true });
  const fresh = (reg) => `rm -rf ${reg.dir}/data; sync`;
  // Beside the shared scratch rather than in it: a bench run elsewhere on this machine empties
  // /dev/shm/dist-bench when it starts, which took this store away mid-run once.
  const store = `${scratch}-push-${process.pid}`;
  hook.after(() => rmSync(store, { recursive: true, force: true }));
  const name = `${R}/bench/large:1`;
  execFileSync(DIST, ['--root', store, 'pull', name], { stdio: 'ignore' });
  const layout = join(work, 'layouts', 'large');
  const rows = [];

  // The registry's own floor: the same blobs sent by curl (POST, one PUT each), 4 at a time as
  // dist push does, with no hashing on the client. What the registry spends receiving and
  // hashing 512 MiB bounds every client's push from below.
  const blobs = [ctx.meta.large.config, ...ctx.meta.large.layers].map((d) => join(layout, 'blobs', 'sha256', d.slice('sha256:'.length)));
  const upload = join(ctx.repo, 'scripts', 'bench', 'upload-blob.sh');
  const push = {
    'dist push': `${DIST} --root ${store} push ${name} ${forDist.host}/bench/large:1`,
    'skopeo copy oci:': `skopeo copy --quiet --preserve-digests --dest-tls-verify=false oci:${layout}:1 docker://${forSkopeo.host}/bench/large:1`,
    'registry floor': `printf '%s\\n' ${blobs.join(' ')} | xargs -P4 -I{} ${upload} ${forFloor.host} bench/large {}`,
  };
  const pr = hyperfine('push-large', push, { prepare: { [push['dist push']]: fresh(forDist), [push['skopeo copy oci:']]: fresh(forSkopeo), [push['registry floor']]: fresh(forFloor) } });
  rows.push(['push 8 x 64 MiB to a fresh registry', 'dist push', fmt(pr['dist push']), '', '']);
  rows.push(['', 'skopeo copy --preserve-digests oci: docker://', fmt(pr['skopeo copy oci:']), 'dist/skopeo', ratio(pr['dist push'], pr['skopeo copy oci:']).toFixed(2)]);
  rows.push(['', 'floor: the registry alone, curl POST + PUT per blob (4 at a time), no client hashing', fmt(pr['registry floor']), 'floor/skopeo', ratio(pr['registry floor'], pr['skopeo copy oci:']).toFixed(2)]);
  // And what the target registry itself spends per push (its CPU seconds), beside dist's total.
  const registryCpu = (reg, cmd) => {
    execFileSync('bash', ['-c', fresh(reg)]);
    const before = ctx.cpuOfPid(reg.pid);
    execFileSync('bash', ['-c', cmd], { stdio: 'ignore' });
    return ctx.cpuOfPid(reg.pid) - before;
  };
  const regCpu = [1, 2, 3].map(() => registryCpu(forFloor, push['registry floor'])).sort((a, b) => a - b)[1];
  rows.push(['', 'CPU the registry spends receiving the 512 MiB (median of 3)', `${regCpu.toFixed(2)} s CPU`, '', '']);

  const digests = [ctx.meta.large.config, ...ctx.meta.large.layers];
  const copy = {
    'dist copy': `${DIST} copy ${name} ${forDist.host}/bench/large:1`,
    'skopeo copy --all': `skopeo copy --quiet --all --preserve-digests --src-tls-verify=false --dest-tls-verify=false docker://${name} docker://${forSkopeo.host}/bench/large:1`,
    // Both registries' own floor: curl GET piped into curl PUT per blob, 4 at a time, no hashing.
    'registry floor': `printf '%s\\n' ${digests.join(' ')} | xargs -P4 -I{} ${join(ctx.repo, 'scripts', 'bench', 'copy-blob.sh')} ${R} ${forFloor.host} bench/large {}`,
  };
  const cr = hyperfine('copy-large', copy, { prepare: { [copy['dist copy']]: fresh(forDist), [copy['skopeo copy --all']]: fresh(forSkopeo), [copy['registry floor']]: fresh(forFloor) } });
  rows.push(['copy 8 x 64 MiB registry to registry', 'dist copy', fmt(cr['dist copy']), '', '']);
  rows.push(['', 'skopeo copy --all --preserve-digests docker:// docker://', fmt(cr['skopeo copy --all']), 'dist/skopeo', ratio(cr['dist copy'], cr['skopeo copy --all']).toFixed(2)]);
  rows.push(['', 'floor: the two registries alone, curl GET | curl PUT per blob (4 at a time), no hashing', fmt(cr['registry floor']), 'floor/skopeo', ratio(cr['registry floor'], cr['skopeo copy --all']).toFixed(2)]);

  execFileSync('bash', ['-c', fresh(forDist)]);
  const pushRss = await peakRss([DIST, '--root', store, 'push', name, `${forDist.host}/bench/large:1`]);
  execFileSync('bash', ['-c', fresh(forDist)]);
  const copyRss = await peakRss([DIST, 'copy', name, `${forDist.host}/bench/large:1`]);
  rows.push(['peak RSS, large image (512 MiB)', 'dist push', `${pushRss.toFixed(0)} MiB`, '', '']);
  rows.push(['', 'dist copy', `${copyRss.toFixed(0)} MiB`, '', '']);
  return rows;
}

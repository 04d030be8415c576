// Bench group: dist serve beside Debian's docker-registry holding the same images. skopeo copy
// and podman pull from each, in interleaved rounds, and the CPU seconds each server spent per
// copy (from /proc/<pid>/stat around the rounds). `node scripts/bench/run.mjs group serve`.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Starts bin/dist serve on a free port over `root` and resolves with its address and pid. */
function startServe(DIST, root, hook) {
  const child = spawn(DIST, ['--root', root, 'serve', '--addr', '127.0.0.1:0', '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
  hook.after(() => {
    child.kill('SIGTERM');
    return new Promise((r) => child.once('exit', r));
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      if (out.includes('\n')) resolve({ host: out.slice(0, out.indexOf('\n')), pid: child.pid });
    });
    child.once('exit', (code) => reject(new Error(`dist serve exited ${code}`)));
  });
}

/** podman with throwaway vfs storage, as test/helpers/podman.ts sets it up, as an env prefix for a shell. */
function podmanEnv(dir) {
  mkdirSync(join(dir, 'storage'), { recursive: true });
  mkdirSync(join(dir, 'run', 'libpod'), { recursive: true });
  writeFileSync(join(dir, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${dir}/storage"\nrunroot = "${dir}/run"\n`);
  writeFileSync(join(dir, 'containers.conf'), `[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "${dir}/run/libpod"\n`);
  writeFileSync(join(dir, 'registries.conf'), `unqualified-search-registries = []\n[[registry]]\nlocation = "127.0.0.1"\ninsecure = true\n`);
  return `CONTAINERS_STORAGE_CONF=${dir}/storage.conf CONTAINERS_CONF=${dir}/containers.conf CONTAINERS_REGISTRIES_CONF=${dir}/registries.conf XDG_RUNTIME_DIR=${dir}/run TMPDIR=${dir}`;
}

export default async function serveGroup(ctx) {
  const { DIST, R, reg, hook, hyperfine, ratio, fmt, cpuOfPid, RUNS } = ctx;
  // A scratch of its own: ctx.scratch is one path for every checkout on the machine, and
  // another bench starting or ending removes it (it did, mid-round).
  const scratch = `${ctx.scratch}-serve-${process.pid}`;
  mkdirSync(scratch, { recursive: true });
  hook.after(() => rmSync(scratch, { recursive: true, force: true }));
  const root = join(scratch, 'store');
  for (const image of ['large', 'many']) execFileSync(DIST, ['--root', root, 'pull', `${R}/bench/${image}:1`], { stdio: 'ignore' });
  const served = await startServe(DIST, root, hook);
  const S = served.host;
  const podman = podmanEnv(join(scratch, 'podman'));
  hook.after(() => {
    try {
      execFileSync('bash', ['-c', `${podman} podman system reset --force`], { stdio: 'ignore' });
    } catch {}
  });
  const rows = [];
  const servers = { 'dist serve': { host: S, pid: served.pid }, 'docker-registry': { host: R, pid: reg.pid } };
  for (const image of ['large', 'many']) {
    const what = image === 'large' ? 'serve 8 x 64 MiB' : 'serve 40 small layers';
    for (const tool of ['skopeo copy', 'podman pull']) {
      const cmds = {};
      const prepare = {};
      for (const [name, s] of Object.entries(servers)) {
        const cmd =
          tool === 'skopeo copy'
            ? `skopeo copy --quiet --src-tls-verify=false docker://${s.host}/bench/${image}:1 oci:${scratch}/serve-out:x`
            : `${podman} podman pull -q ${s.host}/bench/${image}:1 >/dev/null`;
        cmds[name] = cmd;
        prepare[cmd] = tool === 'skopeo copy' ? `rm -rf ${scratch}/serve-out; sync` : `${podman} podman rmi -a -f >/dev/null 2>&1; sync`;
      }
      // podman pull writes every layer out through vfs: slow on the large image, so fewer rounds.
      const runs = tool === 'podman pull' ? Math.min(RUNS, 5) : RUNS;
      const before = Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, cpuOfPid(s.pid)]));
      const r = hyperfine(`serve-${tool.split(' ')[0]}-${image}`, cmds, { prepare, runs });
      // Each server served only its own command: its CPU over the rounds (and the warm-up) per copy.
      const cpu = Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, (cpuOfPid(s.pid) - before[k]) / (runs + 1)]));
      rows.push([what, `${tool} from dist serve`, fmt(r['dist serve']), '', '']);
      rows.push([what, `${tool} from docker-registry`, fmt(r['docker-registry']), 'dist serve/docker-registry', ratio(r['dist serve'], r['docker-registry']).toFixed(2)]);
      rows.push([what, `${tool}: server CPU per copy`, `dist serve ${cpu['dist serve'].toFixed(2)} s, docker-registry ${cpu['docker-registry'].toFixed(2)} s`, 'CPU dist serve/docker-registry', (cpu['dist serve'] / cpu['docker-registry']).toFixed(2)]);
    }
  }
  const rss = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${served.pid}/status`, 'utf8'))[1]) / 1024;
  rows.push(['peak RSS, serve', 'dist serve after every copy above', `${rss.toFixed(0)} MiB`, '', '']);
  return rows;
}

// make bench: dist beside its peers, in one run, on the same fixtures, as whole processes.
// Timing is hyperfine's (medians and min-max over repeated runs); peak RSS is read from
// /proc/<pid>/status (VmHWM) while the process runs. Prints a Markdown table of ratios and
// writes it to bench/results.md. `node scripts/bench/run.mjs jobs` measures pull -j instead;
// `node scripts/bench/run.mjs pull` runs only the pull rows and prints them.
// Each scripts/bench/group-*.mjs adds a group of rows (see runGroups); `node
// scripts/bench/run.mjs group NAME...` runs only those groups (group-NAME.mjs) and prints them.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fixtures } from './fixtures.mjs';

const repo = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const DIST = join(repo, 'bin', 'dist');
const work = join(repo, 'bench', 'work');
// tmpfs: measure the tools, not this machine's noisy disk; one per checkout, so that two benches
// (two worktrees) never clear each other's.
const scratch = `/dev/shm/dist-bench-${createHash('sha256').update(repo).digest('hex').slice(0, 8)}`;
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
// bin/dist keeps node from loading NODE_EXTRA_CA_CERTS at start-up (cmd/launcher.cts), which
// costs every other node process ~75 ms when set. Floors and the node start-up baseline run
// without it: a floor is the least a Node tool could cost.
const NODE = 'env -u NODE_EXTRA_CA_CERTS node';
// The undici floors start node as bin/dist does: without Node's own fetch, whose globals undici
// reads at load (~10 ms a process).
const UNDICI_NODE = `${NODE} --no-experimental-fetch`;
const extraCa = process.env.NODE_EXTRA_CA_CERTS;
const hooks = [];
const hook = { after: (fn) => hooks.push(fn) };
const cleanup = async () => {
  for (const fn of hooks.reverse()) await fn();
};
process.on('SIGINT', () => cleanup().then(() => process.exit(130)));

/**
 * Times each command `runs` times with hyperfine, in rounds: each round runs every command
 * once, in turn, so that a slow spell on this shared machine hits all of them alike rather
 * than whichever ran then. Returns per command the median, min, max and the time of each
 * round (for paired ratios).
 */
function hyperfine(name, commands, { prepare, runs = RUNS, shell = true } = {}) {
  const labels = Object.keys(commands);
  const times = Object.fromEntries(labels.map((l) => [l, []]));
  const out = join(work, `hf-${name}.json`);
  for (let round = 0; round < runs; round++) {
    const args = ['--style', 'none', '--runs', '1', '--warmup', round === 0 ? '1' : '0', '--export-json', out];
    if (!shell) args.push('-N');
    else args.push('--shell', 'bash');
    for (const cmd of Object.values(commands)) {
      if (prepare) args.push('--prepare', prepare[cmd] ?? prepare.default ?? 'true');
      args.push(cmd);
    }
    const r = spawnSync('hyperfine', args, { stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) throw new Error(`hyperfine failed for ${name}`);
    JSON.parse(readFileSync(out, 'utf8')).results.forEach((x, i) => times[labels[i]].push(x.times[0]));
  }
  return Object.fromEntries(labels.map((l) => [l, { median: median(times[l]), min: Math.min(...times[l]), max: Math.max(...times[l]), times: times[l] }]));
}

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Peak RSS (MiB) of one run of a single-process command. */
async function peakRss(argv, opts = {}) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'], ...opts });
  let peak = 0;
  const poll = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]));
    } catch {}
  }, 20);
  const code = await new Promise((r) => child.on('close', r));
  clearInterval(poll);
  if (code !== 0) throw new Error(`${argv.join(' ')} exited ${code}`);
  return peak / 1024;
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString());
const CORES = Number(execFileSync('nproc').toString());

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
function cpuOfPid(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3, state
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/**
 * The CPU a command costs the machine: user + system seconds of every process it started (bash's
 * `times` for its children, which include their own waited-for children) plus what the registry
 * spent serving it (none without a registry pid). Median of `runs` runs, each after `prepare`. On a machine where every core is
 * busy, a command cannot finish in less than this over the number of cores.
 */
function cpuSeconds(cmd, prepare, registryPid, runs = 3) {
  const file = join(work, 'times.txt');
  const registryCpu = () => (registryPid ? cpuOfPid(registryPid) : 0);
  const samples = [];
  for (let i = 0; i < runs; i++) {
    execFileSync('bash', ['-c', prepare], { stdio: 'ignore' });
    const before = registryCpu();
    execFileSync('bash', ['-o', 'pipefail', '-c', `${cmd}\ntimes > ${file}`], { stdio: ['ignore', 'ignore', 'inherit'] });
    const registry = registryCpu() - before;
    const children = readFileSync(file, 'utf8').trim().split('\n')[1];
    const own = children.split(/\s+/).reduce((sum, t) => {
      const m = /^(\d+)m([\d.]+)s$/.exec(t);
      return sum + Number(m[1]) * 60 + Number(m[2]);
    }, 0);
    samples.push({ total: own + registry, registry });
  }
  samples.sort((a, b) => a.total - b.total);
  return samples[(runs - 1) >> 1];
}

/**
 * containerd on its own root and socket. `ctr content rm` does not reliably empty the store
 * between runs (fetch then finds everything present), so each ctr run starts from a fresh
 * containerd on an empty root: the reset script is hyperfine's --prepare for ctr.
 */
async function startContainerd() {
  const dir = join(work, 'containerd');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const sock = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  writeFileSync(config, `version = 2\nroot = "${dir}/root"\nstate = "${dir}/state"\n[grpc]\n  address = "${sock}"\n[ttrpc]\n  address = "${sock}.ttrpc"\n[debug]\n  level = "error"\n`);
  const reset = join(dir, 'reset.sh');
  writeFileSync(
    reset,
    `#!/bin/bash
pkill -f "containerd --config ${config}" && while pgrep -f "containerd --config ${config}" >/dev/null; do sleep 0.05; done
rm -rf ${dir}/root ${dir}/state ${sock}
setsid containerd --config ${config} </dev/null >/dev/null 2>&1 &
for i in $(seq 1 200); do [ -S ${sock} ] && exit 0; sleep 0.05; done
echo "containerd did not start" >&2; exit 1
`,
  );
  execFileSync('bash', [reset], { stdio: 'inherit' });
  hooks.push(async () => {
    spawnSync('pkill', ['-f', `containerd --config ${config}`]);
    await delay(300);
  });
  return { sock, reset: `bash ${reset}` };
}

const fmt = (s) => `${s.median.toFixed(2)} s (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;
const ms = (s) => `${(s.median * 1000).toFixed(0)} ms (${(s.min * 1000).toFixed(0)}–${(s.max * 1000).toFixed(0)})`;
/** The median of the per-round ratios A/B (rounds interleave the commands, see hyperfine()). */
const ratio = (a, b) => median(a.times.map((t, i) => t / b.times[i]));

/**
 * The groups in scripts/bench/group-*.mjs (all of them, or those named), in name order. Each
 * default-exports `async (ctx) => rows`, a row being [benchmark, command, wall time, ratio
 * name, value], and gets the shared fixtures and timing helpers in ctx.
 */
async function runGroups({ reg, meta, store }, names) {
  const dir = join(repo, 'scripts', 'bench');
  const files = readdirSync(dir)
    .filter((f) => /^group-.+\.mjs$/.test(f))
    .filter((f) => !names?.length || names.includes(f.slice(6, -4)))
    .sort();
  const ctx = { DIST, R: reg.host, reg, meta, store, repo, work, scratch, hook, CORES, RUNS, hyperfine, peakRss, ratio, fmt, ms, median, cpuOfPid, cpuSeconds, startContainerd };
  const rows = [];
  for (const f of files) {
    process.stderr.write(`bench: ${f}\n`);
    const group = await import(join(dir, f));
    rows.push(...(await group.default(ctx)));
  }
  return rows;
}

async function main() {
  mkdirSync(work, { recursive: true });
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const { reg, meta } = await fixtures(work, hook);
  const R = reg.host;
  const mode = process.argv[2];
  const rows = [];
  const env = `export PATH=${join(repo, 'bin')}:$PATH;`;

  if (mode === 'jobs') {
    for (const image of ['large', 'many']) {
      const cmds = {};
      for (const j of [1, 2, 4, 6, 8, 16]) cmds[`-j${j}`] = `${DIST} --root ${scratch}/j pull -j ${j} ${R}/bench/${image}:1`;
      const r = hyperfine(`jobs-${image}`, cmds, { prepare: { default: `rm -rf ${scratch}/j` } });
      for (const [k, v] of Object.entries(r)) console.log(`${image}: dist pull ${k}: ${fmt(v)}`);
    }
    return;
  }

  if (mode === 'group') {
    const only = await runGroups({ reg, meta }, process.argv.slice(3));
    process.stdout.write(`${only.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n`);
    return;
  }

  const containerd = await startContainerd();
  const ctr = `ctr -a ${containerd.sock} -n bench`;
  for (const image of ['large', 'many']) {
    const ref = `${R}/bench/${image}:1`;
    const mt = meta[image].mediaType;
    const seed = `${env} cd ${scratch}/seed && dist fetch ${R}/bench/${image} 1 mediatype:${mt} | jq -r '.layers[] | "dist fetch ${R}/bench/${image} "+.digest + "| dist ingest --expected-digest "+.digest+" --expected-size "+(.size | tostring) +" ${R}/bench/${image}@"+.digest' | xargs -I{} -P10 -n1 sh -c "{}"`;
    // Two floors under the seed pipeline, same shape (one manifest fetch, then per layer a
    // producer piped into a consumer, under xargs -P10): with `node -e 0` as every dist
    // process, the cost of starting Node alone; with curl and a Node script that only hashes
    // and writes, the least a Node ingest can cost.
    const manifest = `curl -s -H 'Accept: ${mt}' http://${R}/v2/bench/${image}/manifests/1`;
    const nodeFloor = `cd ${scratch}/seed && ${NODE} -e 0 && ${manifest} | jq -r '.layers[] | "${NODE} -e 0 | ${NODE} -e 0"' | xargs -I{} -P10 -n1 sh -c "{}"`;
    const hashFloor = `cd ${scratch}/seed && ${NODE} -e 0 && ${manifest} | jq -r '.layers[] | "curl -s http://${R}/v2/bench/${image}/blobs/"+.digest+" | ${NODE} ${repo}/scripts/bench/hash-stdin.cjs ${scratch}/seed/"+.digest' | xargs -I{} -P10 -n1 sh -c "{}"`;
    // And with a Node script in curl's place that verifies what it streams, as dist fetch does.
    const verifyFloor = `cd ${scratch}/seed && ${NODE} -e 0 && ${manifest} | jq -r '.layers[] | "${NODE} ${repo}/scripts/bench/fetch-hash.cjs http://${R}/v2/bench/${image}/blobs/"+.digest+" "+.digest+" | ${NODE} ${repo}/scripts/bench/hash-stdin.cjs ${scratch}/seed/"+.digest' | xargs -I{} -P10 -n1 sh -c "{}"`;
    // And with undici in fetch-hash's place (fetch-undici.cjs: undici's public entry loaded as
    // dist loads it, one dispatch): the floor for a tool that must make its requests with undici.
    const undiciFloor = `cd ${scratch}/seed && ${NODE} -e 0 && ${manifest} | jq -r '.layers[] | "${UNDICI_NODE} ${repo}/scripts/bench/fetch-undici.cjs http://${R}/v2/bench/${image}/blobs/"+.digest+" "+.digest+" | ${NODE} ${repo}/scripts/bench/hash-stdin.cjs ${scratch}/seed/"+.digest' | xargs -I{} -P10 -n1 sh -c "{}"`;
    // dist pull's floor on undici: the same GETs, 4 at a time, in one Node process that loads
    // undici as dist does and discards the bytes (no hashing, no store).
    const undiciPullFloor = `${UNDICI_NODE} ${repo}/scripts/bench/pull-undici.cjs http://${R}/v2/bench/${image} 1 ${mt}`;
    // The registry's own floor: the same manifest, config and layers fetched by curl, 4 at a
    // time as dist pull does, into /dev/null (no hashing, no store).
    const objects = [`manifests/1`, ...[meta[image].config, ...meta[image].layers].map((d) => `blobs/${d}`)];
    const registryFloor = `curl -sf --no-progress-meter -Z --parallel-max 4 -H 'Accept: ${mt}' ${objects.map((o) => `-o /dev/null http://${R}/v2/bench/${image}/${o}`).join(' ')}`;
    const cmds = {
      'dist pull': `${DIST} --root ${scratch}/pull pull ${ref}`,
      'skopeo copy': `skopeo copy --quiet --src-tls-verify=false docker://${ref} oci:${scratch}/skopeo:x`,
      'ctr content fetch': `${ctr} content fetch --plain-http ${ref} > /dev/null`,
      'seed pipeline': seed,
      'node floor': nodeFloor,
      'hash floor': hashFloor,
      'verify floor': verifyFloor,
      'undici floor': undiciFloor,
      'registry floor': registryFloor,
      'undici pull floor': undiciPullFloor,
    };
    const freshSeed = `rm -rf ${scratch}/seed; mkdir -p ${scratch}/seed; sync`;
    const prepare = {
      [cmds['dist pull']]: `rm -rf ${scratch}/pull; sync`,
      [cmds['skopeo copy']]: `rm -rf ${scratch}/skopeo; sync`,
      [cmds['ctr content fetch']]: `${containerd.reset}; sync`,
      [cmds['seed pipeline']]: freshSeed,
      [cmds['node floor']]: freshSeed,
      [cmds['hash floor']]: freshSeed,
      [cmds['verify floor']]: freshSeed,
      [cmds['undici floor']]: freshSeed,
    };
    const r = hyperfine(`pull-${image}`, cmds, { prepare });
    const what = image === 'large' ? 'pull 8 x 64 MiB' : 'pull 40 small layers';
    // The CPU budget: on a machine whose cores are all busy, the pipeline cannot beat its CPU
    // seconds over the cores. Over dist pull's wall time, that is the least pipeline/pull can be.
    const budget = {};
    for (const k of ['dist pull', 'seed pipeline', 'verify floor', 'undici floor', 'node floor']) {
      budget[k] = cpuSeconds(cmds[k], prepare[cmds[k]], reg.pid);
    }
    rows.push([what, 'dist pull', fmt(r['dist pull']), '', '']);
    for (const peer of ['skopeo copy', 'ctr content fetch']) rows.push([what, peer, fmt(r[peer]), `dist/${peer.split(' ')[0]}`, ratio(r['dist pull'], r[peer]).toFixed(2)]);
    rows.push([what, 'floor: the registry alone, curl -Z (4 at a time) to /dev/null', fmt(r['registry floor']), 'floor/dist pull', ratio(r['registry floor'], r['dist pull']).toFixed(2)]);
    rows.push([what, 'floor: undici alone in Node (pull-undici.cjs: same GETs, 4 at a time, no hashing, no store)', fmt(r['undici pull floor']), 'dist pull/floor', ratio(r['dist pull'], r['undici pull floor']).toFixed(2)]);
    rows.push([what, '', '', 'floor/skopeo', ratio(r['undici pull floor'], r['skopeo copy']).toFixed(2)]);
    rows.push([what, 'seed xargs -P10 pipeline', fmt(r['seed pipeline']), 'pipeline/dist pull', ratio(r['seed pipeline'], r['dist pull']).toFixed(2)]);
    rows.push([what, 'floor: same pipeline, node -e 0 as each dist', fmt(r['node floor']), 'floor/dist pull', ratio(r['node floor'], r['dist pull']).toFixed(2)]);
    rows.push([what, 'floor: same pipeline, curl \\| node hash-stdin.cjs', fmt(r['hash floor']), 'floor/dist pull', ratio(r['hash floor'], r['dist pull']).toFixed(2)]);
    rows.push([what, 'floor: same pipeline, node fetch-hash.cjs \\| node hash-stdin.cjs (both ends verify)', fmt(r['verify floor']), 'floor/dist pull', ratio(r['verify floor'], r['dist pull']).toFixed(2)]);
    rows.push([what, 'floor: same pipeline, node fetch-undici.cjs \\| node hash-stdin.cjs (both verify; the fetch on undici)', fmt(r['undici floor']), 'floor/dist pull', ratio(r['undici floor'], r['dist pull']).toFixed(2)]);
    rows.push([what, 'seed pipeline against its floors', '', 'pipeline/both-verify floor', ratio(r['seed pipeline'], r['verify floor']).toFixed(2)]);
    rows.push([what, '', '', 'pipeline/undici floor', ratio(r['seed pipeline'], r['undici floor']).toFixed(2)]);
    rows.push([what, '', '', 'undici floor/both-verify floor', ratio(r['undici floor'], r['verify floor']).toFixed(2)]);
    const cpu = (k) => `${budget[k].total.toFixed(2)} s CPU (registry ${budget[k].registry.toFixed(2)})`;
    const bound = (k) => (budget[k].total / CORES / r['dist pull'].median).toFixed(2);
    rows.push([what, 'CPU budget: dist pull, all processes and the registry', cpu('dist pull'), '', '']);
    rows.push([what, 'CPU budget: seed pipeline', cpu('seed pipeline'), `least pipeline/dist pull on ${CORES} cores`, bound('seed pipeline')]);
    rows.push([what, 'CPU budget: both-verify floor', cpu('verify floor'), `least floor/dist pull on ${CORES} cores`, bound('verify floor')]);
    rows.push([what, 'CPU budget: undici floor', cpu('undici floor'), `least floor/dist pull on ${CORES} cores`, bound('undici floor')]);
    rows.push([what, 'CPU budget: node -e 0 floor', cpu('node floor'), `least floor/dist pull on ${CORES} cores`, bound('node floor')]);
  }

  if (mode === 'pull') {
    process.stdout.write(`${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n`);
    return;
  }

  // Unpack: the real Debian image, pulled once into a store that umoci reads directly.
  const store = `${scratch}/debian-store`;
  execFileSync(DIST, ['--root', store, 'pull', `${R}/bench/debian:1`], { stdio: 'ignore' });
  execFileSync(DIST, ['--root', store, 'images', 'tag', `${R}/bench/debian:1`, 'debian'], { stdio: 'ignore' });
  const layers = meta.debian.layers.map((d) => join(store, 'blobs', 'sha256', d.slice(7)));
  const u = {
    'dist unpack': `${DIST} --root ${store} unpack debian ${scratch}/u-dist > /dev/null`,
    'umoci unpack': `umoci unpack --image ${store}:debian ${scratch}/u-umoci > /dev/null`,
    'GNU tar -xzf': `mkdir ${scratch}/u-tar && ${layers.map((l) => `tar --numeric-owner -xzf ${l} -C ${scratch}/u-tar`).join(' && ')}`,
  };
  const ur = hyperfine('unpack', u, { prepare: { default: `rm -rf ${scratch}/u-dist ${scratch}/u-umoci ${scratch}/u-tar; sync` } });
  rows.push([`unpack Debian (${meta.debian.source}, tmpfs)`, 'dist unpack', fmt(ur['dist unpack']), '', '']);
  rows.push(['', 'umoci unpack', fmt(ur['umoci unpack']), 'dist/umoci', ratio(ur['dist unpack'], ur['umoci unpack']).toFixed(2)]);
  rows.push(['', 'GNU tar -xzf (no whiteouts)', fmt(ur['GNU tar -xzf']), 'dist/tar', ratio(ur['dist unpack'], ur['GNU tar -xzf']).toFixed(2)]);

  // Start-up: a short command as a whole process.
  const digest = meta.debian.layers[0];
  const startup = { 'dist path': `${DIST} --root ${store} path ${digest}`, 'node -e 0': `${NODE} -e 0` };
  if (extraCa) startup['node -e 0, NODE_EXTRA_CA_CERTS set'] = 'node -e 0';
  const s = hyperfine('startup', startup, { runs: 30, shell: false });
  rows.push(['start-up', 'dist path <digest>', ms(s['dist path']), 'dist/node', ratio(s['dist path'], s['node -e 0']).toFixed(2)]);
  rows.push(['', 'node -e 0 (no NODE_EXTRA_CA_CERTS)', ms(s['node -e 0']), '', '']);
  if (extraCa) rows.push(['', 'node -e 0 (NODE_EXTRA_CA_CERTS set, as here)', ms(s['node -e 0, NODE_EXTRA_CA_CERTS set']), 'dist/node', ratio(s['dist path'], s['node -e 0, NODE_EXTRA_CA_CERTS set']).toFixed(2)]);

  rows.push(...(await runGroups({ reg, meta, store })));

  // Memory: peak RSS on the large image.
  rmSync(`${scratch}/mem`, { recursive: true, force: true });
  const pullRss = await peakRss([DIST, '--root', `${scratch}/mem`, 'pull', `${R}/bench/large:1`]);
  const applyRss = await peakRss([DIST, '--root', `${scratch}/mem`, 'unpack', `${R}/bench/large:1`, `${scratch}/mem-rootfs`]);
  rows.push(['peak RSS, large image (512 MiB)', 'dist pull', `${pullRss.toFixed(0)} MiB`, '', '']);
  rows.push(['', 'dist unpack (apply x 8)', `${applyRss.toFixed(0)} MiB`, '', '']);

  const table = [
    `# dist benchmarks`,
    '',
    `${new Date().toISOString().slice(0, 10)}, ${RUNS} rounds after a warm-up (start-up: 30); each round runs every command of a group once, in turn. Times are medians with min–max; ratios are medians of the per-round ratios; < 1 means dist is faster.`,
    `Machine: ${CORES} cores, Node ${process.version}; registry: Debian docker-registry on 127.0.0.1; outputs on tmpfs.`,
    `NODE_EXTRA_CA_CERTS ${extraCa ? 'is set here' : 'is unset here'}; floors and the start-up baseline run node without it (bin/dist never has node load it).`,
    '',
    '| benchmark | command | wall time | ratio | value |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
  ].join('\n');
  mkdirSync(join(repo, 'bench'), { recursive: true });
  writeFileSync(join(repo, 'bench', 'results.md'), table);
  process.stdout.write(table);
}

main()
  .catch((err) => {
    process.stderr.write(`bench: ${err.message}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    rmSync(scratch, { recursive: true, force: true });
    return cleanup();
  });

import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool } from './cli.js';
import { tempDir } from './tmp.js';

type Hook = { after(fn: () => unknown): void };

/** podman or buildah with throwaway storage and the two settings this sandbox needs. */
export interface Containers {
  /** The environment to run podman, buildah or skopeo with. */
  env: NodeJS.ProcessEnv;
  /** Runs `tool args...` (podman by default) and returns stdout; throws with stderr on failure. */
  run(args: string[], opts?: { tool?: 'podman' | 'buildah'; input?: string | Buffer; allowFail?: boolean }): { status: number; stdout: string; stderr: string };
}

/**
 * A podman/buildah set-up of its own for one test: storage in a temp dir on the `vfs` driver
 * (no overlay or fuse in this sandbox) and `default_ulimits = []` in containers.conf, since
 * podman's default nofile limit is above this sandbox's hard limit and runc refuses it. Its
 * tmp_dir is its own too: root podman's default, /run/libpod, is shared by every podman on the
 * machine, and another test's `podman system reset` removes it ("creating runtime status file").
 * Registries on 127.0.0.1 are marked insecure (plain HTTP). The storage is removed after the
 * test (vfs layers are owned by root and hold whole copies, so `podman system reset` first).
 */
export async function containers(t: Hook): Promise<Containers> {
  requireTool('podman');
  requireTool('runc');
  const dir = await tempDir(t, 'dist-podman-');
  await mkdir(join(dir, 'storage'), { recursive: true });
  await mkdir(join(dir, 'run'), { recursive: true });
  const storageConf = join(dir, 'storage.conf');
  await writeFile(storageConf, `[storage]\ndriver = "vfs"\ngraphroot = "${join(dir, 'storage')}"\nrunroot = "${join(dir, 'run')}"\n`);
  const containersConf = join(dir, 'containers.conf');
  await writeFile(containersConf, `[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "${join(dir, 'run', 'libpod')}"\n`);
  const registriesConf = join(dir, 'registries.conf');
  await writeFile(registriesConf, `unqualified-search-registries = []\n[[registry]]\nlocation = "127.0.0.1"\ninsecure = true\n[[registry]]\nlocation = "localhost"\ninsecure = true\n`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CONTAINERS_STORAGE_CONF: storageConf,
    CONTAINERS_CONF: containersConf,
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    XDG_RUNTIME_DIR: join(dir, 'run'),
    TMPDIR: dir,
  };
  const run: Containers['run'] = (args, opts = {}) => {
    const tool = opts.tool ?? 'podman';
    const so: SpawnSyncOptions = { env, input: opts.input, encoding: 'utf8', maxBuffer: 1 << 28, timeout: 300_000 };
    const r = spawnSync(tool, args, so);
    const out = { status: r.status ?? -1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
    if (r.error) throw new Error(`${tool} ${args.join(' ')}: ${r.error.message}`);
    if (out.status !== 0 && !opts.allowFail) throw new Error(`${tool} ${args.join(' ')} failed (${out.status}): ${out.stderr}`);
    return out;
  };
  t.after(() => {
    spawnSync('podman', ['system', 'reset', '--force'], { env, stdio: 'ignore', timeout: 120_000 });
  });
  return { env, run };
}

/**
 * A temp dir whose path is all lowercase: podman and buildah parse `oci:PATH:NAME` as an image
 * name too, and mkdtemp's random letters (capitals) make it "invalid reference format".
 */
export async function lowercaseTempDir(t: Hook, prefix = 'dist-oci-'): Promise<string> {
  const { randomBytes } = await import('node:crypto');
  const { rm } = await import('node:fs/promises');
  const dir = join('/tmp', `${prefix}${randomBytes(6).toString('hex')}`);
  await mkdir(dir, { recursive: true });
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

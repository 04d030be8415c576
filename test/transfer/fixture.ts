import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { requireTool, sh, spawnDist } from '../helpers/cli.js';
import { buildImage, type BuiltImage } from '../helpers/image.js';
import { busyboxRootfs, describeTree } from '../helpers/rootfs.js';
import { tempDir } from '../helpers/tmp.js';

type Hook = { after(fn: () => unknown): void };

export interface Source {
  dir: string;
  /** An OCI layout holding the image, for umoci and skopeo. */
  layout: string;
  /** A dist store holding the same image under `name`. */
  root: string;
  name: string;
  image: BuiltImage;
}

/**
 * A real runnable image: a busybox rootfs (gzip) and an app layer that writes
 * /etc/os-release, in an OCI layout and in a dist store (copied by skopeo) named `name`.
 */
export async function sourceImage(t: Hook, name = 'localhost/transfer/app:1'): Promise<Source> {
  requireTool('skopeo');
  const dir = await tempDir(t, 'dist-transfer-');
  const layout = join(dir, 'layout');
  const image = await buildImage(layout, name, [
    { tar: busyboxRootfs(join(dir, 'rootfs')), compression: 'gzip' },
    { files: { 'etc/os-release': 'NAME="dist transfer test"\n', 'app/': null, 'app/run': '#!/bin/sh\necho app\n' } },
  ]);
  const root = join(dir, 'store');
  sh(`skopeo copy --quiet oci:${layout}:${name} oci:${root}:${name}`);
  return { dir, layout, root, name, image };
}

/** Runs bin/dist and asserts it succeeded; returns stdout. */
export async function dist(args: string[], input?: Buffer): Promise<string> {
  const r = await spawnDist(args, input === undefined ? {} : { input });
  assert.equal(r.status, 0, `dist ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Asserts that `dist unpack` of `name` in `root` gives the same tree as `umoci unpack` of the
 * source layout's image.
 */
export async function assertUnpacksLikeUmoci(t: Hook, src: Source, root: string, name: string): Promise<void> {
  requireTool('umoci');
  const dir = await tempDir(t, 'dist-unpack-');
  await dist(['--root', root, 'unpack', name, join(dir, 'dist')]);
  sh(`umoci unpack --image ${src.layout}:${src.name} ${join(dir, 'bundle')}`);
  const ours = describeTree(join(dir, 'dist'));
  assert.ok(Object.keys(ours).length > 250, 'a real tree');
  assert.deepEqual(ours, describeTree(join(dir, 'bundle', 'rootfs')));
}

/** containerd on a root and socket of its own, stopped (by its pid) when the test ends. */
export async function startContainerd(t: Hook): Promise<{ ctr: (args: string[]) => string }> {
  requireTool('containerd');
  requireTool('ctr');
  const dir = await tempDir(t, 'dist-containerd-');
  const sock = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  mkdirSync(join(dir, 'root'));
  writeFileSync(config, `version = 2\nroot = "${dir}/root"\nstate = "${dir}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${sock}"\n[ttrpc]\n  address = "${sock}.ttrpc"\n[debug]\n  level = "error"\n`);
  const child = spawn('containerd', ['--config', config], { stdio: 'ignore' });
  t.after(async () => {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
  });
  for (let i = 0; i < 400 && !existsSync(sock); i++) await delay(50);
  assert.ok(existsSync(sock), 'containerd started');
  return {
    ctr: (args) => {
      const r = spawnSync('ctr', ['-a', sock, '-n', 'dist-test', ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
      if (r.status !== 0) throw new Error(`ctr ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
      return r.stdout;
    },
  };
}

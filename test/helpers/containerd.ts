import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { requireTool } from './cli.js';
import { tempDir } from './tmp.js';

type Hook = { after(fn: () => unknown): void };

/** A containerd of the test's own (root, state and socket in a temp dir), and ctr against it. */
export interface Containerd {
  sock: string;
  /** Runs `ctr -a <sock> -n dist-test args...`; throws with stderr on failure. */
  ctr(args: string[]): string;
}

/**
 * Starts Debian's containerd on its own root and socket (as scripts/bench/run.mjs does), with
 * the `native` snapshotter usable (no overlay needed), and stops it by pid after the test.
 */
export async function startContainerd(t: Hook): Promise<Containerd> {
  requireTool('containerd');
  requireTool('ctr');
  const dir = await tempDir(t, 'dist-containerd-');
  const sock = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  await writeFile(config, `version = 2\nroot = "${dir}/root"\nstate = "${dir}/state"\n[grpc]\n  address = "${sock}"\n[ttrpc]\n  address = "${sock}.ttrpc"\n[debug]\n  level = "error"\n`);
  const child = spawn('containerd', ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c) => (stderr += c));
  const exited = new Promise((r) => child.on('exit', r));
  t.after(async () => {
    child.kill('SIGTERM');
    await Promise.race([exited, delay(5000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  for (let i = 0; !existsSync(sock); i++) {
    if (child.exitCode !== null || i > 400) throw new Error(`containerd did not start: ${stderr}`);
    await delay(25);
  }
  return {
    sock,
    ctr(args) {
      const r = spawnSync('ctr', ['-a', sock, '-n', 'dist-test', ...args], { encoding: 'utf8', timeout: 300_000 });
      if (r.status !== 0) throw new Error(`ctr ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
      return r.stdout;
    },
  };
}

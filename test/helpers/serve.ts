import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { DIST_BIN } from './cli.js';
import { buildImage, type BuiltImage } from './image.js';
import { busyboxRootfs } from './rootfs.js';
import { tempDir } from './tmp.js';

type Hook = { after(fn: () => unknown): void };

/** A running `dist serve` process. */
export interface Served {
  /** host:port from its first stdout line. */
  host: string;
  url: string;
  pid: number;
  child: ChildProcess;
  /** Everything it wrote to stderr so far (the access log). */
  stderr(): string;
  /** Peak RSS so far in MiB (VmHWM), read from /proc. */
  peakRssMiB(): number;
  /** Sends SIGTERM and resolves with the exit status. */
  stop(): Promise<number | null>;
}

/**
 * Starts the real bin/dist serve on a free loopback port (`--addr 127.0.0.1:0`) over the store
 * at `root`, with extra flags; resolves once it printed its address. Stopped after the test.
 */
export async function startServe(t: Hook, root: string, flags: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<Served> {
  const child = spawn(DIST_BIN, ['--root', root, 'serve', '--addr', '127.0.0.1:0', ...flags], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  child.stderr!.on('data', (c) => (err += c));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const host = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (c) => {
      out += c;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    void exited.then((code) => reject(new Error(`dist serve exited ${code} before listening: ${err}`)));
  });
  let stopped: Promise<number | null> | undefined;
  const stop = () => {
    if (!stopped) {
      child.kill('SIGTERM');
      stopped = Promise.race([exited, delay(20_000).then(() => (child.kill('SIGKILL'), exited))]);
    }
    return stopped;
  };
  t.after(stop);
  const scheme = flags.includes('--tls-cert') ? 'https' : 'http';
  return {
    host,
    url: `${scheme}://${host}`,
    pid: child.pid!,
    child,
    stderr: () => err,
    peakRssMiB: () => {
      try {
        return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
      } catch {
        return 0;
      }
    },
    stop,
  };
}

/** What /etc/os-release holds in the busybox test image. */
export const OS_RELEASE = 'PRETTY_NAME="served by dist"\nID=dist-serve\n';

/** A store holding a runnable busybox image (with /etc/os-release) named `registry.test/team/busybox:1`. */
export async function busyboxStore(t: Hook): Promise<{ root: string; img: BuiltImage }> {
  const dir = await tempDir(t);
  const tarball = busyboxRootfs(join(dir, 'rootfs'));
  const root = join(dir, 'store');
  const img = await buildImage(root, 'registry.test/team/busybox:1', [{ tar: tarball, compression: 'gzip' }, { files: { 'etc/os-release': OS_RELEASE } }]);
  return { root, img };
}

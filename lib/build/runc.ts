import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DistError } from '../errors.js';
import { lstatOrUndefined } from '../archive/paths.js';

export interface StepOptions {
  /** The root filesystem the step runs in (absolute). */
  rootfs: string;
  /** A shell script, run as `/bin/sh -c SCRIPT` inside the rootfs. */
  script: string;
  /** `none` (default): a network namespace with only loopback; `host`: the host's network. */
  network?: 'none' | 'host';
  signal?: AbortSignal;
  /** The step's stdout and stderr, as they come. */
  onOutput?: (chunk: Buffer) => void;
}

/** Docker's default capability set: enough for dpkg and package scripts, not for the host. */
const CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** Mount points the runtime spec needs; made in the rootfs when missing, removed afterwards. */
const MOUNT_POINTS = ['proc', 'dev', 'sys'];

/**
 * The OCI runtime spec of a build step: its own mount, pid, ipc and uts namespaces, and its own
 * network namespace (loopback only) unless `network: host`; root in the container with
 * docker's default capabilities; /proc, a fresh /dev (runc makes the standard nodes), /dev/pts,
 * /dev/shm and a read-only /sys. No host path is mounted, so nothing outside the rootfs can
 * change.
 */
function runtimeSpec(opts: StepOptions): object {
  const namespaces = [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }];
  if (opts.network !== 'host') namespaces.push({ type: 'network' });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/bin/sh', '-c', opts.script],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'DEBIAN_FRONTEND=noninteractive'],
      cwd: '/',
      capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
      noNewPrivileges: true,
    },
    root: { path: opts.rootfs, readonly: false },
    hostname: 'dist-build',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    linux: {
      namespaces,
      maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/**
 * Runs a shell script inside `rootfs` under Debian's runc with a generated runtime spec
 * (see runtimeSpec). Mount points runc had to create are removed again, so they do not end
 * up in the layer.
 * Errors: EINVAL when the step exits non-zero (with its status) or runc is missing.
 */
export async function runStep(opts: StepOptions): Promise<void> {
  const made = MOUNT_POINTS.filter((m) => !lstatOrUndefined(Buffer.from(join(opts.rootfs, m))));
  const bundle = mkdtempSync(join(tmpdir(), 'dist-step-'));
  const id = `dist-build-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const state = join(bundle, 'state');
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(runtimeSpec(opts)));
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn('runc', ['--root', state, 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
      const tail: Buffer[] = [];
      const take = (c: Buffer) => {
        tail.push(c);
        if (tail.length > 20) tail.shift();
        opts.onOutput?.(c);
      };
      child.stdout.on('data', take);
      child.stderr.on('data', take);
      const onAbort = () => spawnSync('runc', ['--root', state, 'kill', id, 'KILL'], { stdio: 'ignore' });
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      child.on('error', (err) => {
        opts.signal?.removeEventListener('abort', onAbort);
        reject(new DistError('EINVAL', (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'runc is not installed (apt-get install runc)' : `runc: ${err.message}`));
      });
      child.on('close', (code) => {
        opts.signal?.removeEventListener('abort', onAbort);
        if (opts.signal?.aborted) return reject(opts.signal.reason);
        if (code === 0) return resolve();
        const last = Buffer.concat(tail).toString().trim().split('\n').pop() ?? '';
        reject(new DistError('EINVAL', `step exited with status ${code}${last ? `: ${last}` : ''}`, { status: code }));
      });
    });
  } finally {
    spawnSync('runc', ['--root', state, 'delete', '--force', id], { stdio: 'ignore' });
    rmSync(bundle, { recursive: true, force: true });
    for (const m of made) {
      const p = join(opts.rootfs, m);
      // Only an empty directory runc made; anything the step put there stays.
      try {
        if (readdirSync(p).length === 0) rmdirSync(p);
      } catch {}
    }
  }
}

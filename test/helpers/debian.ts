import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, requireTool, sh } from './cli.js';

/** The cached debootstrap of the bench (scripts/bench/fixtures.mjs), made when missing. */
export function debianRootfs(): string {
  const rootfs = join(REPO, 'bench', 'work', 'debian-rootfs');
  if (!existsSync(join(rootfs, 'etc', 'debian_version'))) {
    requireTool('debootstrap');
    mkdirSync(join(REPO, 'bench', 'work'), { recursive: true });
    execFileSync('debootstrap', ['--variant=minbase', 'bookworm', rootfs, 'http://deb.debian.org/debian'], { stdio: 'ignore' });
  }
  return rootfs;
}

/** A small real .deb made with dpkg-deb: files, a symlink, and a postinst that hardlinks and chmods. */
export function makeDeb(dir: string, name = 'dist-law'): string {
  const root = join(dir, `${name}-pkg`);
  mkdirSync(join(root, 'DEBIAN'), { recursive: true });
  mkdirSync(join(root, 'usr', 'bin'), { recursive: true });
  mkdirSync(join(root, 'usr', 'share', name), { recursive: true });
  writeFileSync(join(root, 'DEBIAN', 'control'), `Package: ${name}\nVersion: 1.0\nArchitecture: all\nMaintainer: dist <dist@example.org>\nDepends: libc6\nDescription: a package for the diff law\n`);
  writeFileSync(join(root, 'DEBIAN', 'postinst'), `#!/bin/sh\nset -e\nln -f /usr/share/${name}/data /usr/share/${name}/data-link\nchmod 0640 /usr/share/${name}/data\n`);
  chmodSync(join(root, 'DEBIAN', 'postinst'), 0o755);
  writeFileSync(join(root, 'usr', 'bin', name), `#!/bin/sh\necho ${name} installed\n`);
  chmodSync(join(root, 'usr', 'bin', name), 0o755);
  writeFileSync(join(root, 'usr', 'share', name, 'data'), 'data\n'.repeat(1000));
  symlinkSync(`../share/${name}/data`, join(root, 'usr', 'bin', `${name}-data`));
  const deb = join(dir, `${name}_1.0_all.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', root, deb], { stdio: 'ignore' });
  return deb;
}

/** apt-get install of a local .deb in a chroot (apt needs /proc, mounted for the call). */
export function aptInstall(rootfs: string, deb: string): void {
  const name = deb.split('/').pop()!;
  sh(`cp ${deb} ${rootfs}/tmp/ && mount -t proc proc ${rootfs}/proc`);
  try {
    sh(`chroot ${rootfs} sh -c 'cd /tmp && apt-get install -y ./${name}'`, { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } finally {
    sh(`umount ${rootfs}/proc; rm -f ${rootfs}/tmp/${name}`);
  }
}


import { DistError } from '../errors.js';
import type { Descriptor, Platform } from './mediatypes.js';

const ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The platform of this machine, in OCI terms (linux/amd64, linux/arm64/v8, ...). */
export function hostPlatform(nodePlatform: string, nodeArch: string): Platform {
  const architecture = ARCH[nodeArch] ?? nodeArch;
  const p: Platform = { os: nodePlatform === 'win32' ? 'windows' : nodePlatform, architecture };
  if (architecture === 'arm64') p.variant = 'v8';
  return p;
}

/** Parses `os/arch[/variant]`. Errors: EINVAL. */
export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new DistError('EINVAL', `invalid platform ${JSON.stringify(text)}: expected os/arch[/variant], e.g. linux/arm64/v8`);
  }
  const p: Platform = { os: parts[0]!, architecture: ARCH[parts[1]!] ?? parts[1]! };
  if (parts[2]) p.variant = parts[2];
  return p;
}

export function formatPlatform(p: Platform | undefined): string {
  if (!p) return 'unknown';
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** arm64's variant defaults to v8 and arm's to v7, as containerd normalises them. */
function variantOf(p: Platform): string | undefined {
  if (p.variant) return p.variant;
  if (p.architecture === 'arm64') return 'v8';
  if (p.architecture === 'arm') return 'v7';
  return undefined;
}

export function matches(want: Platform, have: Platform | undefined): boolean {
  if (!have) return false;
  return want.os === have.os && want.architecture === have.architecture && (want.variant === undefined || variantOf(want) === variantOf(have));
}

/**
 * Picks the manifest for `want` from an index's entries (the first match, as containerd
 * does). Errors: ENOENT naming the platforms the index does have.
 */
export function selectManifest(manifests: Descriptor[], want: Platform): Descriptor {
  const found = manifests.find((m) => matches(want, m.platform));
  if (found) return found;
  const have = manifests.map((m) => formatPlatform(m.platform)).join(', ');
  throw new DistError('ENOENT', `no manifest for platform ${formatPlatform(want)} (the index has: ${have || 'none'})`);
}

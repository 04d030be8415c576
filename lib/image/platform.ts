import { DistError } from '../errors.js';
import type { Descriptor, Platform } from './mediatypes.js';

const ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/**
 * The platform to pull by default: linux/<this machine's architecture> on every host OS, as
 * docker and crane do (images are Linux images; on a Mac or Windows they run in a Linux VM).
 */
export function hostPlatform(_nodePlatform: string, nodeArch: string): Platform {
  const architecture = ARCH[nodeArch] ?? nodeArch;
  const p: Platform = { os: 'linux', architecture };
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

/**
 * The platforms `want` can run, best first, as containerd's matcher orders them: arm64 is
 * v8 (with or without the variant written); arm/vN runs vN, then each lower variant down to
 * v5 (v7 -> v6 -> v5). Other architectures have one entry; a variant asked for must match.
 */
function compatible(want: Platform): Platform[] {
  const arm = /^v([5-7])$/.exec(variantOf(want) ?? '');
  if (want.architecture !== 'arm' || !arm) return [want];
  const out: Platform[] = [];
  for (let v = Number(arm[1]); v >= 5; v--) out.push({ ...want, variant: `v${v}` });
  return out;
}

/** True when `have` is exactly `want` (a variant-less want on a non-arm architecture takes any variant). */
export function matches(want: Platform, have: Platform | undefined): boolean {
  if (!have || want.os !== have.os || want.architecture !== have.architecture) return false;
  const armFamily = want.architecture === 'arm' || want.architecture === 'arm64';
  if (!armFamily && want.variant === undefined) return true;
  return variantOf(want) === variantOf(have);
}

/**
 * Picks the manifest for `want` from an index's entries: the best compatible platform first
 * (see compatible), and among equals the first listed, as containerd does. Errors: ENOENT
 * naming the platforms the index does have.
 */
export function selectManifest(manifests: Descriptor[], want: Platform): Descriptor {
  for (const p of compatible(want)) {
    const found = manifests.find((m) => matches(p, m.platform));
    if (found) return found;
  }
  const have = manifests.map((m) => formatPlatform(m.platform)).join(', ');
  throw new DistError('ENOENT', `no manifest for platform ${formatPlatform(want)} (the index has: ${have || 'none'})`);
}

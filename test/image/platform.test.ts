import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Descriptor, Platform } from '../../lib/image/mediatypes.js';
import { hostPlatform, parsePlatform, selectManifest } from '../../lib/image/platform.js';

const entry = (platform: Platform): Descriptor => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${platform.architecture}${platform.variant ?? ''}`, size: 1, platform });
const pick = (want: string, have: string[]) => {
  const manifests = have.map((h) => entry(parsePlatform(h)));
  return [manifests.indexOf(selectManifest(manifests, parsePlatform(want)))].map((i) => have[i])[0];
};

test('platform: the default is linux/<host arch> on every host OS, as docker and crane do', () => {
  assert.deepEqual(hostPlatform('darwin', 'arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.deepEqual(hostPlatform('darwin', 'x64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(hostPlatform('win32', 'x64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(hostPlatform('freebsd', 'x64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(hostPlatform('linux', 'x64'), { os: 'linux', architecture: 'amd64' });
});

test('platform: arm64 matches with or without its v8 variant, and never arm64/v9 for a v8 host', () => {
  assert.equal(pick('linux/arm64', ['linux/amd64', 'linux/arm64/v8']), 'linux/arm64/v8');
  assert.equal(pick('linux/arm64/v8', ['linux/amd64', 'linux/arm64']), 'linux/arm64');
  assert.equal(pick('linux/arm64', ['linux/arm64/v9', 'linux/arm64/v8']), 'linux/arm64/v8');
  assert.throws(() => pick('linux/arm64', ['linux/arm64/v9']), { code: 'ENOENT' });
});

test('platform: arm falls back v7 -> v6 -> v5 in that order, whatever order the index lists them; never upwards', () => {
  assert.equal(pick('linux/arm/v7', ['linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7']), 'linux/arm/v7');
  assert.equal(pick('linux/arm/v7', ['linux/arm/v5', 'linux/arm/v6']), 'linux/arm/v6');
  assert.equal(pick('linux/arm/v7', ['linux/amd64', 'linux/arm/v5']), 'linux/arm/v5');
  assert.equal(pick('linux/arm', ['linux/arm/v6', 'linux/arm/v7']), 'linux/arm/v7', 'arm without a variant is v7');
  assert.equal(pick('linux/arm/v7', ['linux/arm']), 'linux/arm', 'an entry without a variant is v7');
  assert.equal(pick('linux/arm/v6', ['linux/arm/v7', 'linux/arm/v5']), 'linux/arm/v5');
  assert.throws(() => pick('linux/arm/v5', ['linux/arm/v6', 'linux/arm/v7']), { code: 'ENOENT' });
});

test('platform: other architectures match os and architecture; a variant asked for must match', () => {
  assert.equal(pick('linux/amd64', ['linux/arm64', 'linux/amd64']), 'linux/amd64');
  assert.throws(() => pick('linux/amd64', ['windows/amd64']), { code: 'ENOENT' });
  assert.throws(() => pick('linux/ppc64le/v9', ['linux/ppc64le/v8']), { code: 'ENOENT' });
});

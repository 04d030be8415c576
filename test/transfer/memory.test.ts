import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DIST_BIN } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { dist } from './fixture.js';

const MIB = 1 << 20;

/** Peak RSS (VmHWM) of a live process, in MiB. */
function peakMiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Writes a blob of `mib` MiB into blobs/ of the layout, a 1 MiB random chunk at a time. */
function bigBlob(layout: string, mib: number): { digest: string; size: number } {
  const chunk = randomBytes(MIB);
  const hash = createHash('sha256');
  const tmp = join(layout, 'big.tmp');
  const fd = openSync(tmp, 'w');
  for (let i = 0; i < mib; i++) {
    chunk.writeUInt16LE(i, 0);
    hash.update(chunk);
    writeSync(fd, chunk);
  }
  closeSync(fd);
  const digest = `sha256:${hash.digest('hex')}`;
  renameSync(tmp, join(layout, 'blobs', 'sha256', digest.slice(7)));
  return { digest, size: mib * MIB };
}

/** Writes JSON as a blob of the layout; returns its descriptor. */
function jsonBlob(layout: string, mediaType: string, doc: object): { mediaType: string; digest: string; size: number } {
  const bytes = Buffer.from(JSON.stringify(doc));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  writeFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
  return { mediaType, digest, size: bytes.length };
}

test('flat memory: a 768 MiB layer goes through dist export | dist import with small peak RSS on both sides', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'src');
  mkdirSync(join(src, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(src, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const layer = bigBlob(src, 768);
  const config = jsonBlob(src, 'application/vnd.oci.image.config.v1+json', { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] } });
  const manifest = jsonBlob(src, 'application/vnd.oci.image.manifest.v1+json', { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }] });
  writeFileSync(join(src, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'big:1' } }] }));

  const dst = join(dir, 'dst');
  const exporter = spawn(DIST_BIN, ['--root', src, 'export', 'big:1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const importer = spawn(DIST_BIN, ['--root', dst, 'import'], { stdio: ['pipe', 'pipe', 'pipe'] });
  exporter.stdout.pipe(importer.stdin);
  let out = '';
  let err = '';
  importer.stdout.on('data', (c) => (out += c));
  exporter.stderr.on('data', (c) => (err += c));
  importer.stderr.on('data', (c) => (err += c));
  const peaks = [0, 0];
  const poll = setInterval(() => {
    peaks[0] = Math.max(peaks[0]!, peakMiB(exporter.pid!));
    peaks[1] = Math.max(peaks[1]!, peakMiB(importer.pid!));
  }, 50);
  const codes = await Promise.all([exporter, importer].map((c) => new Promise<number>((r) => c.on('close', (code) => r(code ?? 1)))));
  clearInterval(poll);
  assert.deepEqual(codes, [0, 0], err);
  assert.equal(out, 'big:1\n');
  assert.ok(peaks[0]! < 160 && peaks[1]! < 160, `peak RSS export ${peaks[0]!.toFixed(0)} MiB, import ${peaks[1]!.toFixed(0)} MiB`);
  assert.match(await dist(['--root', dst, 'list', '-q']), new RegExp(layer.digest));
});

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

export type Entry = string | Buffer | null | { symlink: string } | { hardlink: string };

export interface LayerSpec {
  /** path -> content; a trailing '/' or null makes a directory. */
  files?: Record<string, Entry>;
  /** A ready-made uncompressed tar instead of `files`. */
  tar?: Buffer;
  compression?: 'gzip' | 'zstd' | 'none';
}

export interface BuiltImage {
  manifest: string;
  manifestSize: number;
  manifestBytes: Buffer;
  mediaType: string;
  config: string;
  layers: string[];
  layerSizes: number[];
  diffIds: string[];
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const MTIME = new Date('2024-01-01T00:00:00Z');

/** A tar (uncompressed) from a file map, entries in the given order. */
export async function makeTar(files: Record<string, Entry>): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  for (const [name, entry] of Object.entries(files)) {
    const base = { name, mtime: MTIME, uid: 0, gid: 0 };
    if (entry === null || name.endsWith('/')) pack.entry({ ...base, type: 'directory', mode: 0o755 });
    else if (typeof entry === 'object' && 'symlink' in entry) pack.entry({ ...base, type: 'symlink', linkname: entry.symlink });
    else if (typeof entry === 'object' && 'hardlink' in entry) pack.entry({ ...base, type: 'link', linkname: entry.hardlink });
    else pack.entry({ ...base, type: 'file', mode: 0o644 }, Buffer.from(entry as string | Buffer));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

function compress(data: Buffer, how: 'gzip' | 'zstd' | 'none'): Buffer {
  if (how === 'none') return data;
  if (how === 'gzip') return gzipSync(data);
  const r = spawnSync('zstd', ['-q', '-c', '-3'], { input: data, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr}`);
  return r.stdout;
}

const LAYER_TYPES = {
  oci: { gzip: 'application/vnd.oci.image.layer.v1.tar+gzip', zstd: 'application/vnd.oci.image.layer.v1.tar+zstd', none: 'application/vnd.oci.image.layer.v1.tar' },
  docker: { gzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip', zstd: 'application/vnd.oci.image.layer.v1.tar+zstd', none: 'application/vnd.docker.image.rootfs.diff.tar' },
};

async function putBlob(dir: string, data: Buffer): Promise<string> {
  const d = sha(data);
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'blobs', 'sha256', d.slice(7)), data);
  return d;
}

/**
 * Writes an image into an OCI layout at `dir` (created or extended) and names it `tag` in
 * index.json. Layers are gzip unless said otherwise; `docker` makes a Docker v2 manifest.
 */
export async function buildImage(
  dir: string,
  tag: string | undefined,
  layers: (Record<string, Entry> | LayerSpec)[],
  opts: { docker?: boolean; platform?: { os: string; architecture: string; variant?: string } } = {},
): Promise<BuiltImage> {
  const kind = opts.docker ? 'docker' : 'oci';
  const platform = opts.platform ?? { os: 'linux', architecture: 'amd64' };
  const descs = [];
  const diffIds: string[] = [];
  for (const l of layers) {
    const isSpec = ('files' in l && typeof l.files === 'object' && l.files !== null && !Buffer.isBuffer(l.files)) || Buffer.isBuffer((l as LayerSpec).tar);
    const spec: LayerSpec = isSpec ? (l as LayerSpec) : { files: l as Record<string, Entry> };
    const raw = spec.tar ?? (await makeTar(spec.files ?? {}));
    diffIds.push(sha(raw));
    const how = spec.compression ?? 'gzip';
    const blob = compress(raw, how);
    descs.push({ mediaType: LAYER_TYPES[kind][how], digest: await putBlob(dir, blob), size: blob.length });
  }
  const config = Buffer.from(
    JSON.stringify({
      created: MTIME.toISOString(),
      ...platform,
      config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: diffIds.map(() => ({ created: MTIME.toISOString(), created_by: 'dist test fixture' })),
    }),
  );
  const configDigest = await putBlob(dir, config);
  const mediaType = opts.docker ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/vnd.oci.image.manifest.v1+json';
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: opts.docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: descs,
    }),
  );
  const manifest = await putBlob(dir, manifestBytes);
  if (tag !== undefined) await addToIndex(dir, { mediaType, digest: manifest, size: manifestBytes.length, annotations: { 'org.opencontainers.image.ref.name': tag } });
  return { manifest, manifestSize: manifestBytes.length, manifestBytes, mediaType, config: configDigest, layers: descs.map((d) => d.digest), layerSizes: descs.map((d) => d.size), diffIds };
}

/** Adds a descriptor to `dir/index.json`, creating the layout files when needed. */
export async function addToIndex(dir: string, desc: object): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  let index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] as object[] };
  try {
    index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
  } catch {
    /* new layout */
  }
  index.manifests.push(desc);
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
}

/** Writes an OCI index of several images (multi-platform) into the layout and names it. */
export async function buildIndex(dir: string, tag: string, images: { image: BuiltImage; platform: object }[]): Promise<{ digest: string; size: number; bytes: Buffer }> {
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: images.map(({ image, platform }) => ({ mediaType: image.mediaType, digest: image.manifest, size: image.manifestSize, platform })),
    }),
  );
  const digest = await putBlob(dir, bytes);
  await addToIndex(dir, { mediaType: 'application/vnd.oci.image.index.v1+json', digest, size: bytes.length, annotations: { 'org.opencontainers.image.ref.name': tag } });
  return { digest, size: bytes.length, bytes };
}

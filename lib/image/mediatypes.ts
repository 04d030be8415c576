/** OCI and Docker media types dist understands. */
export const MT = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

/** Every manifest and index type, in Accept-header preference order. */
export const MANIFEST_TYPES = [MT.ociIndex, MT.dockerList, MT.ociManifest, MT.dockerManifest] as const;

export function isIndex(mediaType: string | undefined): boolean {
  return mediaType === MT.ociIndex || mediaType === MT.dockerList;
}

export function isManifest(mediaType: string | undefined): boolean {
  return mediaType === MT.ociManifest || mediaType === MT.dockerManifest;
}

/**
 * The media type of a parsed manifest or index: its own `mediaType`, else `fallback` (what
 * the bytes came labelled with), else what its shape says (`manifests`: an index), since
 * the field is optional in OCI documents.
 */
export function manifestMediaType(doc: any, fallback?: string): string {
  if (typeof doc?.mediaType === 'string') return doc.mediaType;
  if (fallback) return fallback;
  return Array.isArray(doc?.manifests) ? MT.ociIndex : MT.ociManifest;
}

/** Manifests and indexes are refused above this size, as containerd does (4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** The annotation that names an image in an OCI layout's index.json. */
export const REF_NAME = 'org.opencontainers.image.ref.name';

/** A content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
  [key: string]: unknown;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

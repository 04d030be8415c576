import { DistError } from '../errors.js';
import { isDigest } from '../digest.js';

/**
 * Where a repository lives. `host` is what credentials are keyed by (`docker.io` stays
 * `docker.io` for config.json lookups); `endpoint` is what we connect to.
 */
export interface Locator {
  /** The registry as the user names it: `docker.io`, `localhost:5000`. */
  host: string;
  /** The host:port connected to: `registry-1.docker.io` for docker.io. */
  endpoint: string;
  /** The repository path: `library/redis`. */
  repository: string;
  /** http for loopback hosts or when plain HTTP was asked for, else https. */
  scheme: 'http' | 'https';
}

/** A locator plus an object: `host/repo:tag`, `host/repo@sha256:...`, or both. */
export interface ImageRef extends Locator {
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;

export interface LocatorOptions {
  /** Use http even for non-loopback hosts. */
  plainHttp?: boolean;
}

/** True for localhost, 127.0.0.0/8 and ::1, which get plain HTTP as every peer does. */
export function isLoopback(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name.endsWith('.localhost') || /^127(\.\d{1,3}){3}$/.test(name) || name === '::1';
}

/**
 * Parses a schemaless locator, `docker.io/library/redis` or `localhost:5000/team/app`.
 * The first component is a registry host when it has a dot or a port or is `localhost`;
 * otherwise the registry is docker.io. docker.io maps to registry-1.docker.io and gains
 * `library/` for one-part names. Errors: EINVAL.
 */
export function parseLocator(text: string, opts: LocatorOptions = {}): Locator {
  const input = text.replace(/^(https?:\/\/)/, '');
  const forcedScheme = text.startsWith('http://') ? 'http' : text.startsWith('https://') ? 'https' : undefined;
  const slash = input.indexOf('/');
  const first = slash < 0 ? input : input.slice(0, slash);
  let host: string;
  let path: string;
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
    host = first;
    path = input.slice(slash + 1);
  } else {
    host = 'docker.io';
    path = input;
  }
  if (!HOST.test(host)) throw new DistError('EINVAL', `invalid registry host ${JSON.stringify(host)} in ${JSON.stringify(text)}`);
  if (host === 'index.docker.io' || host === 'registry-1.docker.io') host = 'docker.io';
  if (host === 'docker.io' && path && !path.includes('/')) path = `library/${path}`;
  if (!isRepositoryPath(path)) {
    throw new DistError('EINVAL', `invalid repository ${JSON.stringify(path)} in ${JSON.stringify(text)}: lowercase letters, digits and separators only`);
  }
  return {
    host,
    endpoint: host === 'docker.io' ? 'registry-1.docker.io' : host,
    repository: path,
    scheme: forcedScheme ?? (opts.plainHttp || isLoopback(host) ? 'http' : 'https'),
  };
}

/**
 * Parses an image reference: `host/repo[:tag][@digest]`. Without tag or digest the tag is
 * `latest`. Errors: EINVAL.
 */
export function parseImageRef(text: string, opts: LocatorOptions = {}): ImageRef {
  let rest = text;
  let digest: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw new DistError('EINVAL', `invalid digest ${JSON.stringify(digest)} in reference ${JSON.stringify(text)}`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new DistError('EINVAL', `invalid tag ${JSON.stringify(tag)} in reference ${JSON.stringify(text)}`);
  }
  const loc = parseLocator(rest, opts);
  if (!tag && !digest) tag = 'latest';
  return { ...loc, tag, digest };
}

/** A tag as image references and the distribution spec allow it (at most 128 characters). */
export function isTag(text: string): boolean {
  return TAG.test(text);
}

/**
 * A repository path (`library/redis`) as the distribution spec's `<name>` allows it:
 * `/`-separated components of lowercase letters, digits and separators, at most 255
 * characters. The one rule for a reference's path and for a path `dist serve` is asked for.
 */
export function isRepositoryPath(path: string): boolean {
  return path.length <= 255 && path.split('/').every((c) => COMPONENT.test(c));
}

/** The canonical text of a reference: `host/repo:tag@digest`. */
export function formatRef(ref: ImageRef): string {
  return `${ref.host}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

import { DistError } from './errors.js';
import { parseLocator, type ImageRef } from './remote/locator.js';

/**
 * Where a pull fetches `ref`'s objects from, in order: each mirror, with the same repository
 * path (as containerd's `hosts.toml` mirrors and `dist serve --mirror` take it), then the
 * registry itself. Errors: EINVAL for a mirror that is not a registry URL or host[:port].
 */
export function mirrorPlaces(ref: ImageRef, mirrors: readonly string[]): ImageRef[] {
  const places = mirrors.map((m) => {
    const loc = /^(https?:\/\/)?[^/\s]+\/?$/.test(m) ? parseLocator(`${m.replace(/\/+$/, '')}/${ref.repository}`) : undefined;
    // A mirror without a dot or port would parse as a docker.io repository: not a mirror.
    if (!loc || loc.repository !== ref.repository || (loc.host === 'docker.io' && !/docker\.io/.test(m))) {
      throw new DistError('EINVAL', `invalid mirror ${JSON.stringify(m)}: expected a registry URL or host[:port]`);
    }
    return { ...ref, ...loc };
  });
  return [...places, ref];
}

/**
 * Fetches one object from the first place that answers: a mirror that lacks it, is down or
 * fails passes to the next, and the registry, last, answers or fails as it would alone. What
 * a place sends is verified by the caller as from the registry (digests), so a mirror can
 * make a pull fail but never change what it stores.
 */
export async function fromFirst<T>(places: readonly ImageRef[], fetch: (loc: ImageRef) => Promise<T>, signal?: AbortSignal): Promise<T> {
  for (const place of places.slice(0, -1)) {
    try {
      return await fetch(place);
    } catch (err) {
      if (signal?.aborted) throw err;
    }
  }
  return fetch(places[places.length - 1]!);
}

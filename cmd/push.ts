import { usageError, wholeNumber, type Command } from './spec.js';
import { REMOTE_OPTIONS } from './remote.js';
import { storeFor } from './store.js';

/**
 * Parallel blob uploads: pull's default (cmd/pull.ts, measured there). Not measured for push
 * yet: -j 1/2/4/8 of 8 x 64 MiB took 6.3/5.2/7.5/7.5 s once each on this 2-core machine while
 * other work held it at load ~18, which ranks nothing.
 */
export const PUSH_JOBS = 4;

/** True when a store name is a full reference (`host/repo...`), usable as a push target. */
function isFullRef(name: string): boolean {
  const first = name.split('/')[0]!;
  return name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
}

export const push: Command = {
  command: 'push <image> [target]',
  describe: 'push an image (manifest, or index with every child) from the store to a registry; prints its digest',
  positionals: {
    image: { describe: 'a name in the store, or a manifest/index digest' },
    target: { describe: 'host/repo[:tag] (default: the name, when it is a full reference)' },
  },
  options: {
    ...REMOTE_OPTIONS,
    jobs: { type: 'number', alias: 'j', describe: `parallel uploads (default ${PUSH_JOBS})` },
    json: { type: 'boolean', describe: 'NDJSON progress events on stdout' },
  },
  examples: [
    ['dist pull localhost:5000/app:1 && dist push localhost:5000/app:1', 'round trip: the name is the target'],
    ['dist push localhost:5000/app:1 localhost:5000/other/app:1', 'to another repository (blobs are mounted)'],
  ],
  epilog: 'Blobs go first, then child manifests by digest, then the index or manifest under the tag: a failed push leaves no tag on a partial image.',
  async run(args, io) {
    const { parseImageRef } = await import('../lib/remote/locator.js');
    const { push: pushImage } = await import('../lib/push.js');
    const { transfer } = await import('./progress.js');
    const targetText: string | undefined = args.target ?? (isFullRef(args.image) ? args.image : undefined);
    if (!targetText) throw usageError(`${JSON.stringify(args.image)} is not a full reference (host/repo:tag): give the target`);
    const target = parseImageRef(targetText, { plainHttp: Boolean(args.plainHttp) });
    const jobs = wholeNumber(args.jobs, '--jobs', 1) ?? PUSH_JOBS;
    const store = await storeFor(args, io);
    return transfer(args, io, 'push', `${args.image} -> ${targetText}`, (client, onEvent) =>
      pushImage(store, client, args.image, target, { concurrency: jobs, signal: io.signal, onEvent }),
    );
  },
};

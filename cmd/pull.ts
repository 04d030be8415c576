import { wholeNumber, type Command } from './spec.js';
import { REMOTE_OPTIONS, clientFor } from './remote.js';
import { ndjson, print } from './io.js';
import { storePaths } from './store.js';

/**
 * Parallel blob downloads per pull. Measured with `node scripts/bench/run.mjs jobs` (loopback,
 * 2 cores, medians of 7 interleaved rounds). 8 x 64 MiB: -j1 1.15 s, -j2 1.07, -j4 1.13, -j6
 * 1.08, -j8 1.20, -j16 1.08. 40 small layers: -j1 0.34 s, then 0.24-0.25 s from -j2 to -j16.
 * Past 2 they tie here; 4 leaves headroom for a remote registry's latency.
 */
export const PULL_JOBS = 4;

export const PLATFORM_OPTION = {
  platform: { type: 'string' as const, describe: 'os/arch[/variant] to pick from an index (default: linux/<host arch>, on any host OS)' },
};

export const pull: Command = {
  command: 'pull <image>',
  describe: 'pull an image (manifest, config, layers) into the store and name it; prints its digest',
  positionals: { image: { describe: 'host/repo[:tag][@digest]' } },
  options: {
    ...REMOTE_OPTIONS,
    ...PLATFORM_OPTION,
    'all-platforms': { type: 'boolean', describe: 'pull every platform of an index' },
    jobs: { type: 'number', alias: 'j', describe: `parallel downloads (default ${PULL_JOBS})` },
    name: { type: 'string', describe: 'name in index.json (default: the reference)' },
    json: { type: 'boolean', describe: 'NDJSON progress events on stdout' },
    mirror: { type: 'string', array: true, describe: 'a registry mirror (URL or host[:port]) to try first for every object; repeatable, tried in order, then the registry' },
  },
  examples: [
    ['dist pull localhost:5000/library/debian:12', 'pull for this platform'],
    ['dist unpack $(dist pull localhost:5000/library/debian:12) ./rootfs', 'pull, then unpack by digest'],
    ['dist pull --platform linux/arm64 localhost:5000/app:1', 'pick another platform from an index'],
  ],
  epilog: 'On a terminal, progress is drawn on stderr; otherwise dist pull is silent but for the digest (or --json events).',
  async run(args, io) {
    const { parseImageRef } = await import('../lib/remote/locator.js');
    const { hostPlatform, parsePlatform } = await import('../lib/image/platform.js');
    const { pull: pullImage } = await import('../lib/pull.js');
    const { Progress } = await import('./progress.js');
    const ref = parseImageRef(args.image, { plainHttp: Boolean(args.plainHttp) });
    const platform = args.platform ? parsePlatform(args.platform) : hostPlatform(process.platform, process.arch);
    const jobs = wholeNumber(args.jobs, '--jobs', 1) ?? PULL_JOBS;
    // lib/pull.ts creates the layout once the manifest request is out.
    const store = storePaths(args, io);
    const client = await clientFor(args, io, 'pull');
    const progress = !args.json && io.stderrTTY ? new Progress(io.stderr) : undefined;
    try {
      const result = await pullImage(store, client, ref, {
        platform,
        allPlatforms: Boolean(args.allPlatforms),
        concurrency: jobs,
        name: args.name,
        signal: io.signal,
        mirrors: args.mirror ?? [],
        onEvent: (e) => {
          if (args.json) void print(io, ndjson([e]));
          else progress?.on(e);
        },
      });
      if (!args.json) await print(io, `${result.descriptor.digest}\n`);
      return 0;
    } finally {
      await client.close();
    }
  },
};

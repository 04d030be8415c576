import { wholeNumber, type Command } from './spec.js';
import { REMOTE_OPTIONS } from './remote.js';
import { PLATFORM_OPTION } from './pull.js';
import { PUSH_JOBS } from './push.js';

export const copy: Command = {
  command: 'copy <source> <target>',
  aliases: ['cp'],
  describe: 'copy an image between registries or repositories, keeping its digests; prints the digest',
  positionals: { source: { describe: 'host/repo[:tag][@digest]' }, target: { describe: 'host/repo[:tag]' } },
  options: {
    ...REMOTE_OPTIONS,
    platform: { ...PLATFORM_OPTION.platform, describe: 'copy only this os/arch[/variant] out of an index (default: every platform)' },
    jobs: { type: 'number', alias: 'j', describe: `parallel transfers (default ${PUSH_JOBS})` },
    json: { type: 'boolean', describe: 'NDJSON progress events on stdout' },
  },
  examples: [
    ['dist copy localhost:5000/app:1 localhost:5001/app:1', 'every platform, same digests'],
    ['dist copy --platform linux/arm64 localhost:5000/app:1 localhost:5000/app-arm:1', 'one platform; blobs are mounted within a registry'],
  ],
  async run(args, io) {
    const { parseImageRef } = await import('../lib/remote/locator.js');
    const { parsePlatform } = await import('../lib/image/platform.js');
    const { copy: copyImage } = await import('../lib/copy.js');
    const { transfer } = await import('./progress.js');
    const opts = { plainHttp: Boolean(args.plainHttp) };
    const src = parseImageRef(args.source, opts);
    const dst = parseImageRef(args.target, opts);
    const platform = args.platform ? parsePlatform(args.platform) : undefined;
    const jobs = wholeNumber(args.jobs, '--jobs', 1) ?? PUSH_JOBS;
    return transfer(args, io, 'copy', `${args.source} -> ${args.target}`, (client, onEvent) =>
      copyImage(client, src, dst, { platform, concurrency: jobs, signal: io.signal, onEvent }),
    );
  },
};

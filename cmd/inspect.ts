import type { Command } from './spec.js';
import { REMOTE_OPTIONS, clientFor } from './remote.js';
import { print } from './io.js';
import { PLATFORM_OPTION } from './pull.js';
import { storeFor } from './store.js';

export const inspect: Command = {
  command: 'inspect <image>',
  describe: 'print an image summary as JSON like skopeo inspect (digest, platform, created, layers, env, labels)',
  positionals: { image: { describe: 'host/repo[:tag][@digest], or with --local a name or digest in the store' } },
  options: {
    ...REMOTE_OPTIONS,
    ...PLATFORM_OPTION,
    raw: { type: 'boolean', describe: 'print the manifest or index bytes as stored' },
    config: { type: 'boolean', describe: "print the config (of the platform's manifest, for an index)" },
    local: { type: 'boolean', describe: 'read the store instead of the registry' },
  },
  examples: [
    ['dist inspect localhost:5000/app:1 | jq .Digest', 'the digest, as skopeo inspect gives it'],
    ['dist inspect --local --config app:1 | jq .config.Env', 'the config of an image in the store'],
  ],
  async run(args, io) {
    const { hostPlatform, parsePlatform } = await import('../lib/image/platform.js');
    const { inspectLocal, inspectRemote, summary } = await import('../lib/inspect.js');
    const platform = args.platform ? parsePlatform(args.platform) : hostPlatform(process.platform, process.arch);
    const opts = { platform, raw: Boolean(args.raw), tags: !args.raw && !args.config, signal: io.signal };
    let found;
    if (args.local) {
      found = await inspectLocal(await storeFor(args, io), args.image, opts);
    } else {
      const { parseImageRef } = await import('../lib/remote/locator.js');
      const ref = parseImageRef(args.image, { plainHttp: Boolean(args.plainHttp) });
      const client = await clientFor(args, io, 'inspect');
      try {
        found = await inspectRemote(client, ref, opts);
      } finally {
        await client.close();
      }
    }
    if (args.raw) await print(io, found.top.bytes);
    else if (args.config) await print(io, found.config);
    else await print(io, `${JSON.stringify(summary(found), null, 4)}\n`);
    return 0;
  },
};

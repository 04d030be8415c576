import type { Command } from './spec.js';
import { ndjson, print, write } from './io.js';
import { storeFor } from './store.js';
import { PLATFORM_OPTION } from './pull.js';

export const unpack: Command = {
  command: 'unpack <image> <dir>',
  describe: "apply an image's layers in order to a directory, checking each DiffID; prints the ChainID",
  positionals: { image: { describe: 'an image name (see dist images) or manifest digest' }, dir: { describe: 'the root filesystem directory' } },
  options: {
    ...PLATFORM_OPTION,
    json: { type: 'boolean', describe: 'one JSON object per layer, then the result' },
  },
  examples: [['dist unpack localhost:5000/library/debian:12 ./rootfs', 'make a rootfs']],
  async run(args, io) {
    const { hostPlatform, parsePlatform } = await import('../lib/image/platform.js');
    const { unpack: unpackImage } = await import('../lib/unpack.js');
    const platform = args.platform ? parsePlatform(args.platform) : hostPlatform(process.platform, process.arch);
    const store = await storeFor(args, io);
    const result = await unpackImage(store, args.image, args.dir, {
      platform,
      signal: io.signal,
      onWarning: (msg) => void write(io.stderr, `dist unpack: warning: ${msg}\n`),
      onLayer: (i, layer, r) => {
        if (args.json) void print(io, ndjson([{ layer: i, digest: layer.digest, diffId: r.diffId, size: r.size }]));
      },
    });
    await print(io, args.json ? ndjson([{ manifest: result.manifest, chainId: result.chainId }]) : `${result.chainId}\n`);
    return 0;
  },
};

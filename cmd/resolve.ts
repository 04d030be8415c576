import type { Command } from './spec.js';
import { REMOTE_OPTIONS, clientFor } from './remote.js';
import { print } from './io.js';

export const resolve: Command = {
  command: 'resolve <image>',
  describe: 'print the descriptor (mediaType, digest, size) a tag or digest resolves to, as JSON',
  positionals: { image: { describe: 'image reference: host/repo[:tag][@digest]' } },
  options: { ...REMOTE_OPTIONS },
  examples: [['dist resolve localhost:5000/library/debian:12 | jq -r .digest', 'the manifest digest of a tag']],
  async run(args, io) {
    const { parseImageRef } = await import('../lib/remote/locator.js');
    const { resolve: resolveRef } = await import('../lib/remote/fetcher.js');
    const ref = parseImageRef(args.image, { plainHttp: Boolean(args.plainHttp) });
    const client = await clientFor(args, io, 'resolve');
    try {
      const desc = await resolveRef(client, ref, ref.digest ?? ref.tag!, undefined, io.signal);
      await print(io, `${JSON.stringify({ mediaType: desc.mediaType, digest: desc.digest, size: desc.size })}\n`);
      return 0;
    } finally {
      await client.close();
    }
  },
};

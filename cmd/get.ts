import { createReadStream } from 'node:fs';
// A getter: node:stream/promises loads when get runs, not with every command.
import { promises as streams } from 'node:stream';
import type { Command } from './spec.js';
import { storePaths } from './store.js';

export const get: Command = {
  command: 'get <digest>',
  describe: 'write a blob to stdout',
  positionals: { digest: { describe: 'blob digest' } },
  examples: [['dist get sha256:... | tar -tz', 'list the files of a layer']],
  async run(args, io) {
    const { notFound } = await import('../lib/content/info.js');
    const p = storePaths(args, io).blobPath(args.digest);
    const input = createReadStream(p, { highWaterMark: 1 << 20 });
    try {
      await streams.pipeline(input, io.stdout, { end: false });
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') throw notFound(args.digest);
      throw err;
    }
    return 0;
  },
};

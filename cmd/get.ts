import { createReadStream } from 'node:fs';
import { streamPromises } from '../lib/lazy.js';
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
      await streamPromises().pipeline(input, io.stdout, { end: false });
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') throw notFound(args.digest);
      throw err;
    }
    return 0;
  },
};

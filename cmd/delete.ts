import type { Command } from './spec.js';
import { storePaths } from './store.js';
import { print, readWords } from './io.js';
import { eachDigest } from './each.js';

export const del: Command = {
  command: 'delete [digests..]',
  aliases: ['rm'],
  describe: 'delete blobs (digests from the arguments, else stdin); prints each deleted digest',
  positionals: { digests: { describe: 'blob digests' } },
  examples: [
    ['dist list -q | xargs dist delete', 'clear out the store'],
    ['dist list -q | dist delete', 'the same, digests on stdin'],
  ],
  async run(args, io) {
    const { deleteBlob } = await import('../lib/content/info.js');
    const store = storePaths(args, io);
    const digests: string[] = args.digests?.length ? args.digests : await readWords(io.stdin());
    return eachDigest('delete', digests, io, async (digest) => {
      await deleteBlob(store, digest);
      await print(io, `${digest}\n`);
    });
  },
};

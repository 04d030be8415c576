import type { Command } from './spec.js';
import { storePaths } from './store.js';
import { humanDuration, humanSize, ndjson, print, table } from './io.js';

export const list: Command = {
  command: 'list',
  aliases: ['ls'],
  describe: 'list the blobs in the store, with the image names that use each',
  options: {
    quiet: { type: 'boolean', alias: 'q', describe: 'print digests only' },
    json: { type: 'boolean', describe: 'one JSON object per line' },
  },
  examples: [
    ['dist list -q | xargs dist delete', 'clear out the store'],
    ['dist list --json | jq -s "map(.size) | add"', 'total bytes held'],
  ],
  async run(args, io) {
    const { listBlobs } = await import('../lib/content/info.js');
    const store = storePaths(args, io);
    const blobs = await listBlobs(store);
    if (args.quiet) {
      await print(io, blobs.map((b) => `${b.digest}\n`).join(''));
      return 0;
    }
    const { reachable } = await import('../lib/image/walk.js');
    const { names } = await reachable(store);
    const usedBy = (d: string) => [...(names.get(d) ?? [])].sort();
    const now = Date.now();
    const text = args.json
      ? ndjson(blobs.map((b) => ({ digest: b.digest, size: b.size, createdAt: b.createdAt.toISOString(), usedBy: usedBy(b.digest) })))
      : table(
          ['DIGEST', 'SIZE', 'AGE', 'USED BY'],
          blobs.map((b) => [b.digest, humanSize(b.size), humanDuration(now - b.createdAt.getTime()), usedBy(b.digest).join(',') || '-']),
        );
    await print(io, text);
    return 0;
  },
};

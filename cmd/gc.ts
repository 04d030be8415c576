import type { Command } from './spec.js';
import { humanSize, ndjson, print, write } from './io.js';
import { storeFor } from './store.js';

export const gc: Command = {
  command: 'gc',
  describe: 'delete blobs that no image name reaches (nor an active ingest or pull holds); prints each and the bytes freed',
  options: {
    'dry-run': { type: 'boolean', alias: 'n', describe: 'only report what would be freed' },
    json: { type: 'boolean', describe: 'one JSON object per blob, then a summary' },
  },
  examples: [
    ['dist gc --dry-run', 'what would be freed'],
    ['dist images rm old:1 && dist gc', 'drop an image and free its unshared blobs'],
  ],
  epilog: 'Freed digests go to stdout (one per line); the summary goes to stderr.',
  async run(args, io) {
    const { gc: collect } = await import('../lib/image/gc.js');
    const store = await storeFor(args, io);
    const result = await collect(store, { dryRun: Boolean(args.dryRun) });
    const verb = args.dryRun ? 'would free' : 'freed';
    if (args.json) {
      await print(io, ndjson([...result.freed.map((b) => ({ digest: b.digest, size: b.size })), { [args.dryRun ? 'wouldFree' : 'freed']: result.freed.length, bytes: result.bytes }]));
    } else {
      await print(io, result.freed.map((b) => `${b.digest}\n`).join(''));
      await write(io.stderr, `dist gc: ${verb} ${result.freed.length} blob${result.freed.length === 1 ? '' : 's'}, ${humanSize(result.bytes)} (${result.bytes} bytes)\n`);
    }
    return 0;
  },
};

import type { Command } from './spec.js';
import { REMOTE_OPTIONS, clientFor, locatorFor } from './remote.js';
import { print } from './io.js';

export const tags: Command = {
  command: 'tags <repository>',
  describe: "list a repository's tags, one per line (follows the registry's pagination)",
  positionals: { repository: { describe: 'host/repo' } },
  options: {
    ...REMOTE_OPTIONS,
    json: { type: 'boolean', describe: 'one JSON object per line' },
  },
  examples: [['dist tags localhost:5000/library/debian', 'every tag']],
  async run(args, io) {
    const { listTags } = await import('../lib/remote/fetcher.js');
    const loc = await locatorFor(args.repository, args);
    const client = await clientFor(args, io, 'tags');
    try {
      for await (const tag of listTags(client, loc, 1000, io.signal)) {
        await print(io, args.json ? `${JSON.stringify({ tag })}\n` : `${tag}\n`);
      }
      return 0;
    } finally {
      await client.close();
    }
  },
};

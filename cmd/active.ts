import type { Command } from './spec.js';
import { storePaths } from './store.js';
import { humanDuration, humanSize, ndjson, print, table } from './io.js';

export const active: Command = {
  command: 'active',
  describe: 'list ingests in flight (and interrupted ones, which a later ingest resumes)',
  options: {
    json: { type: 'boolean', describe: 'one JSON object per line' },
    quiet: { type: 'boolean', alias: 'q', describe: 'print refs only' },
  },
  examples: [['watch -n0.2 dist active', 'watch a parallel download while it runs']],
  async run(args, io) {
    const { listIngests } = await import('../lib/content/info.js');
    const rows = await listIngests(storePaths(args, io));
    const now = Date.now();
    let text: string;
    if (args.json) {
      text = ndjson(
        rows.map((r) => ({
          ref: r.ref,
          size: r.size,
          total: r.total ?? null,
          startedAt: r.startedAt?.toISOString() ?? null,
          updatedAt: r.updatedAt?.toISOString() ?? null,
          live: r.live,
        })),
      );
    } else if (args.quiet) {
      text = rows.map((r) => `${r.ref}\n`).join('');
    } else {
      const ago = (d?: Date) => (d ? `${humanDuration(now - d.getTime())} ago` : '-');
      text = table(
        ['REF', 'SIZE', 'TOTAL', 'STARTED', 'UPDATED'],
        rows.map((r) => [r.ref, humanSize(r.size), r.total !== undefined ? humanSize(r.total) : '-', ago(r.startedAt), ago(r.updatedAt)]),
      );
    }
    await print(io, text);
    return 0;
  },
};

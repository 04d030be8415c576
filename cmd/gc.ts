import { usageError, type Command } from './spec.js';
import { humanSize, ndjson, print, write } from './io.js';
import { storeFor } from './store.js';

export const gc: Command = {
  command: 'gc',
  describe: 'delete blobs that no image name reaches (nor an active ingest or pull holds); prints each and the bytes freed',
  options: {
    'dry-run': { type: 'boolean', alias: 'n', describe: 'only report what would be freed' },
    json: { type: 'boolean', describe: 'one JSON object per blob, then a summary' },
    'ingest-age': { type: 'string', describe: 'also remove interrupted ingests untouched for longer than this (e.g. 30m, 12h, 7d; default 24h)' },
  },
  examples: [
    ['dist gc --dry-run', 'what would be freed'],
    ['dist images rm old:1 && dist gc', 'drop an image and free its unshared blobs'],
    ['dist gc --ingest-age 1h', 'also drop interrupted downloads not resumed within the hour'],
  ],
  epilog:
    'Freed digests go to stdout (one per line); the summary goes to stderr. Interrupted ingests whose blob is committed, or untouched for longer than --ingest-age, are removed (one line each on stderr); an ingest a live process writes is never touched.',
  async run(args, io) {
    const { gc: collect } = await import('../lib/image/gc.js');
    const ingestAgeMs = args.ingestAge === undefined ? undefined : parseDuration(String(args.ingestAge), '--ingest-age');
    const store = await storeFor(args, io);
    const result = await collect(store, { dryRun: Boolean(args.dryRun), ingestAgeMs });
    if (!args.json) for (const ref of result.ingests) await write(io.stderr, `dist gc: ${args.dryRun ? 'would remove' : 'removed'} ingest ${ref}\n`);
    const verb = args.dryRun ? 'would free' : 'freed';
    if (args.json) {
      await print(io, ndjson([...result.freed.map((b) => ({ digest: b.digest, size: b.size })), ...result.ingests.map((ref) => ({ ingest: ref })), { [args.dryRun ? 'wouldFree' : 'freed']: result.freed.length, bytes: result.bytes }]));
    } else {
      await print(io, result.freed.map((b) => `${b.digest}\n`).join(''));
      await write(io.stderr, `dist gc: ${verb} ${result.freed.length} blob${result.freed.length === 1 ? '' : 's'}, ${humanSize(result.bytes)} (${result.bytes} bytes)\n`);
    }
    return 0;
  },
};

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration such as `90s`, `30m`, `12h`, `7d` or `0` into milliseconds. Errors: usage. */
function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m || (m[2] === undefined && Number(m[1]) !== 0)) throw usageError(`${flag}: invalid duration ${JSON.stringify(text)} (e.g. 30m, 12h, 7d)`);
  return Number(m[1]) * UNITS[m[2] ?? 'ms']!;
}

import type { Command } from './spec.js';
import { ndjson, print, write } from './io.js';
import { storePaths } from './store.js';

export const verify: Command = {
  command: 'verify',
  describe: 're-hash every blob and report the corrupt ones (exit 1 if any)',
  options: {
    delete: { type: 'boolean', describe: 'remove corrupt blobs' },
    json: { type: 'boolean', describe: 'one JSON object per blob' },
  },
  examples: [['dist verify --delete && dist pull localhost:5000/app:1', 'repair a store: drop corrupt blobs, fetch them again']],
  async run(args, io) {
    const { verifyStore } = await import('../lib/content/verify.js');
    let bad = 0;
    await verifyStore(storePaths(args, io), {
      remove: Boolean(args.delete),
      signal: io.signal,
      onBlob: async (r) => {
        if (!r.ok) bad++;
        if (args.json) await print(io, ndjson([r]));
        else if (!r.ok) await print(io, `${r.digest}\tcorrupt: hashes to ${r.found}${r.removed ? ' (removed)' : ''}\n`);
      },
    });
    if (bad) await write(io.stderr, `dist verify: ${bad} corrupt blob${bad === 1 ? '' : 's'}\n`);
    return bad ? 1 : 0;
  },
};

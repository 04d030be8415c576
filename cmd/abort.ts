import type { Command } from './spec.js';
import { storePaths } from './store.js';
import { print, readWords } from './io.js';
import { eachDigest } from './each.js';

export const abort: Command = {
  command: 'abort [refs..]',
  describe: 'discard interrupted ingests by ref (containerd\'s Abort; refs from the arguments, else stdin); prints each one removed',
  positionals: { refs: { describe: 'ingest refs, as dist active lists them' } },
  examples: [
    ['dist abort localhost:5000/library/redis@sha256:...', 'drop one interrupted download'],
    ['dist active -q | dist abort', 'drop every interrupted ingest (live ones are refused, one line each)'],
  ],
  epilog: 'An ingest a live process is writing is left alone: one line on stderr, exit 1.',
  async run(args, io) {
    const { abortIngest } = await import('../lib/content/info.js');
    const store = storePaths(args, io);
    const refs: string[] = args.refs?.length ? args.refs.map(String) : await readWords(io.stdin());
    return eachDigest(
      'abort',
      refs,
      io,
      async (ref) => {
        await abortIngest(store, ref);
        await print(io, `${ref}\n`);
      },
      ['ENOENT', 'ELOCKED'],
    );
  },
};

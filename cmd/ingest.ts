import { wholeNumber, type Command } from './spec.js';
import { storeFor } from './store.js';
import { lendPipe, print, write } from './io.js';
import { DistError } from '../lib/errors.js';

export const ingest: Command = {
  command: 'ingest [ref]',
  describe: 'read stdin into the store under an ingest transaction keyed by ref',
  positionals: {
    ref: { describe: 'transaction key; concurrent ingests of one ref share the work (default: the expected digest)' },
  },
  options: {
    'expected-digest': { type: 'string', describe: 'the digest the content must have; exit 0 at once if already stored' },
    'expected-size': { type: 'number', describe: 'the size the content must have; never reads beyond it' },
    offset: { type: 'number', describe: 'stdin starts at this byte of the blob (resume after dist fetch --offset)' },
  },
  examples: [
    [
      'dist fetch localhost:5000/library/redis latest mediatype:application/vnd.docker.distribution.manifest.v2+json | jq -r \'.layers[] | "dist fetch localhost:5000/library/redis "+.digest + "| dist ingest --expected-digest "+.digest+" --expected-size "+(.size | tostring) +" localhost:5000/library/redis@"+.digest\' | xargs -I{} -P10 -n1 sh -c "{}"',
      'download every layer in parallel; repeated and concurrent content is ingested once',
    ],
    ['dist ingest --expected-digest sha256:... --expected-size 1024 myref < layer.tar', 'ingest a local file'],
  ],
  epilog: 'Prints nothing when --expected-digest is given; otherwise prints the digest it committed.',
  async run(args, io) {
    const { writeBlob } = await import('../lib/content/ingest.js');
    const { parseDigest } = await import('../lib/digest.js');
    const expected: string | undefined = args.expectedDigest;
    if (expected !== undefined) parseDigest(expected);
    const ref: string | undefined = args.ref ?? expected;
    if (!ref) throw new DistError('EINVAL', 'give a ref or --expected-digest');
    const size = wholeNumber(args.expectedSize, '--expected-size');
    const offset = wholeNumber(args.offset, '--offset');
    const store = await storeFor(args, io);
    const pipe = io.stdinFd === undefined ? undefined : lendPipe(io.stdinFd, io.signal);
    const result = await writeBlob(store, pipe ? () => pipe : io.stdin, {
      ref,
      expected,
      size,
      bodyOffset: offset,
      signal: io.signal,
      onWait: (since) => {
        if (io.env.DIST_DEBUG === '1') void write(io.stderr, `dist ingest: waiting for ${ref} (locked since ${since.toISOString()})\n`);
      },
    });
    if (expected === undefined) await print(io, `${result.digest}\n`);
    return 0;
  },
};

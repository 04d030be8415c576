import type { Command } from './spec.js';
import { write } from './io.js';
import { sourceDateEpoch } from './epoch.js';

export const diff: Command = {
  command: 'diff <lower> <upper>',
  describe: 'write to stdout a layer tar of what changed from <lower> to <upper> (whiteouts, hardlinks, xattrs, devices)',
  positionals: { lower: { describe: 'the directory before' }, upper: { describe: 'the directory after' } },
  options: {
    gzip: { type: 'boolean', describe: 'gzip the layer (header mtime 0)' },
    zstd: { type: 'boolean', describe: 'zstd the layer (with the zstd tool)' },
  },
  examples: [
    ['dist diff base/ rootfs/ > layer.tar', 'the changes as a layer'],
    ['cp -a base copy && dist diff base rootfs | dist apply copy', 'copy now equals rootfs'],
  ],
  epilog: 'Entries are sorted and times truncated to seconds; SOURCE_DATE_EPOCH clamps later times. A one-line summary goes to stderr.',
  async run(args, io) {
    const { writeDiff } = await import('../lib/archive/diff.js');
    const { DistError } = await import('../lib/errors.js');
    if (args.gzip && args.zstd) throw new DistError('EINVAL', 'choose one of --gzip and --zstd');
    const r = await writeDiff(args.lower, args.upper, io.stdout, {
      signal: io.signal,
      compression: args.gzip ? 'gzip' : args.zstd ? 'zstd' : 'none',
      sourceDateEpoch: sourceDateEpoch(io.env),
      end: false,
    });
    await write(io.stderr, `dist diff: ${r.added} added, ${r.modified} modified, ${r.deleted} deleted; ${r.size} bytes; DiffID ${r.diffId}\n`);
    return 0;
  },
};

import type { Command } from './spec.js';
import { print, write } from './io.js';

export const apply: Command = {
  command: 'apply <dir>',
  describe: "apply one layer (tar, gzip or zstd) from stdin to a directory; prints the layer's DiffID",
  positionals: { dir: { describe: 'the root filesystem directory (created if missing)' } },
  options: {
    'same-owner': { type: 'boolean', describe: "give entries the layer's owners (the default as root); --no-same-owner skips it, as with GNU tar" },
  },
  examples: [
    ['dist apply ./rootfs < layer.tar.gz', 'apply one layer'],
    [
      'dist fetch docker.io/library/wordpress 4.5 mediatype:application/vnd.docker.distribution.manifest.v2+json | jq -r \'.layers[] | "dist apply ./wordpress < $(dist path -n "+.digest+")"\' | xargs -I{} -n1 sh -c "{}"',
      'apply every layer of an image, in order (the seed pipeline; fetch the layers first)',
    ],
  ],
  epilog: 'Whiteouts, opaque directories, hardlinks and symlinks follow the OCI layer rules; nothing is ever written outside <dir>.',
  async run(args, io) {
    const { applyLayer } = await import('../lib/archive/apply.js');
    const result = await applyLayer(args.dir, io.stdin(), {
      signal: io.signal,
      sameOwner: args.sameOwner,
      onWarning: (msg) => void write(io.stderr, `dist apply: warning: ${msg}\n`),
    });
    await print(io, `${result.diffId}\n`);
    return 0;
  },
};

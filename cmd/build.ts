import type { Command } from './spec.js';
import { ndjson, print, write } from './io.js';
import { storeFor } from './store.js';
import { PLATFORM_OPTION } from './pull.js';
import { sourceDateEpoch } from './epoch.js';

export const build: Command = {
  command: 'build <spec> [targets..]',
  describe: 'build the targets of a genoci-style YAML spec into the store, one layer per target',
  positionals: { spec: { describe: 'the spec file (YAML)' }, targets: { describe: 'targets to build (default: all), with what they are based on' } },
  options: {
    ...PLATFORM_OPTION,
    quiet: { type: 'boolean', alias: 'q', describe: "do not show the steps' output" },
    json: { type: 'boolean', describe: 'one JSON object per target' },
  },
  examples: [['dist build cirros.yaml', 'build every target'], ['dist build cirros.yaml modified', 'build one target and its bases']],
  epilog:
    'Targets: base (empty, an image in the store, or an earlier target) and actions: expand, copy, run, install, entrypoint, cmd, env, workdir, user, labels, pre, post, network (none|host). ' +
    'Each target is named <target> and <target>-<YYYY-MM-DD>_<n>; unchanged targets reuse their layer. Prints "<target> <digest>" per target.',
  async run(args, io) {
    const { hostPlatform, parsePlatform } = await import('../lib/image/platform.js');
    const { readSpec } = await import('../lib/build/spec.js');
    const { build: buildSpec } = await import('../lib/build/build.js');
    const spec = readSpec(args.spec);
    const epoch = sourceDateEpoch(io.env);
    const store = await storeFor(args, io);
    const results = await buildSpec(store, spec, args.targets ?? [], {
      platform: args.platform ? parsePlatform(args.platform) : hostPlatform(process.platform, process.arch),
      sourceDateEpoch: epoch,
      signal: io.signal,
      env: io.env,
      onTarget: (e) => {
        if (e.event !== 'start') void write(io.stderr, `dist build: ${e.target}: ${e.event === 'cached' ? 'unchanged, reused' : 'built'} ${e.digest}\n`);
      },
      onOutput: args.quiet ? undefined : (_t, c) => void write(io.stderr, c),
    });
    await print(io, args.json ? ndjson(results) : results.map((r) => `${r.target} ${r.digest}\n`).join(''));
    return 0;
  },
};

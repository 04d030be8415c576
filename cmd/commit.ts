import type { Command } from './spec.js';
import { ndjson, print } from './io.js';
import { storeFor } from './store.js';
import { PLATFORM_OPTION } from './pull.js';
import { sourceDateEpoch } from './epoch.js';

export const commit: Command = {
  command: 'commit <dir>',
  describe: "make an image whose last layer is <dir>'s changes against a base image's root filesystem; prints the manifest digest",
  positionals: { dir: { describe: 'the changed root filesystem' } },
  options: {
    base: { type: 'string', describe: 'the base: an image name or manifest digest in the store, or "empty"' },
    name: { type: 'string', array: true, describe: 'name the new image (repeatable)' },
    message: { type: 'string', alias: 'm', describe: "the history entry's comment" },
    config: { type: 'string', describe: 'JSON: {"entrypoint","cmd","env","workdir","user","labels"} (strings or lists)' },
    ...PLATFORM_OPTION,
    json: { type: 'boolean', describe: 'print the result as one JSON object' },
  },
  examples: [
    ['dist unpack debian ./rootfs && chroot ./rootfs apt-get install -y curl && dist commit ./rootfs --base debian --name debian-curl', "docker commit's job"],
    ['dist commit ./app --base empty --name app --config \'{"entrypoint":["/app/run"]}\'', 'an image from a directory'],
  ],
  epilog: 'The base root filesystem is unpacked once per ChainID into <root>/build/rootfs. SOURCE_DATE_EPOCH clamps layer times and sets created.',
  async run(args, io) {
    const { DistError } = await import('../lib/errors.js');
    const { hostPlatform, parsePlatform } = await import('../lib/image/platform.js');
    const { configChanges } = await import('../lib/build/spec.js');
    const { commit: commitDir } = await import('../lib/build/commit.js');
    if (!args.base) throw new DistError('EINVAL', '--base is required (an image in the store, or empty)');
    const names: string[] = (args.name ?? []).filter(Boolean);
    if (names.length === 0) throw new DistError('EINVAL', '--name is required');
    let config;
    if (args.config !== undefined) {
      let obj: unknown;
      try {
        obj = JSON.parse(args.config);
      } catch (err) {
        throw new DistError('EINVAL', `--config: not JSON: ${(err as Error).message}`);
      }
      if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new DistError('EINVAL', '--config: expected a JSON object');
      const known = ['entrypoint', 'cmd', 'env', 'workdir', 'user', 'labels'];
      for (const k of Object.keys(obj)) if (!known.includes(k)) throw new DistError('EINVAL', `--config: unknown key ${JSON.stringify(k)} (known: ${known.join(', ')})`);
      config = configChanges(obj as Record<string, unknown>, (key, why) => new DistError('EINVAL', `--config: ${key}: ${why}`));
    }
    const { checkName } = await import('../lib/image/names.js');
    for (const n of names) checkName(n);
    const store = await storeFor(args, io);
    const r = await commitDir(store, args.dir, {
      base: args.base,
      platform: args.platform ? parsePlatform(args.platform) : hostPlatform(process.platform, process.arch),
      names,
      message: args.message,
      config,
      sourceDateEpoch: sourceDateEpoch(io.env),
      signal: io.signal,
    });
    const s = r.summary;
    await print(io, args.json ? ndjson([{ digest: r.descriptor.digest, layer: r.layer, added: s.added, modified: s.modified, deleted: s.deleted }]) : `${r.descriptor.digest}\n`);
    return 0;
  },
};

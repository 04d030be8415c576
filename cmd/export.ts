import { usageError, type Command } from './spec.js';
import { storePaths } from './store.js';
import { DistError } from '../lib/errors.js';

export const exportCmd: Command = {
  command: 'export <images..>',
  describe: 'write images to one tar (OCI layout with a Docker manifest.json, or docker save) for docker/podman load, ctr import, skopeo and dist import',
  positionals: { images: { describe: 'image names (see dist images) or manifest digests' } },
  options: {
    output: { type: 'string', alias: 'o', describe: 'the archive file, or - for stdout (the default when stdout is not a terminal)' },
    format: { type: 'string', default: 'oci', describe: 'oci (OCI layout plus manifest.json) or docker (the classic docker save layout)' },
    platform: { type: 'string', describe: 'export only this os/arch[/variant] of an index (default: every platform it has)' },
    'exclude-from': { type: 'string', describe: 'leave out the blobs listed in FILE, one digest a line (dist list -q on the target): a delta archive' },
  },
  examples: [
    ['dist export app:1 -o app.tar', 'one file for docker load, podman load, ctr import and skopeo'],
    ['dist export app:1 | ssh device dist import', 'stream to a device'],
    ['dist export app:1 --exclude-from <(ssh device dist list -q) -o app-delta.tar', 'only what the device lacks'],
  ],
  epilog: '--platform exports that platform of an index; without it an index goes whole. The same images always give the same bytes.',
  async run(args, io) {
    const { hostPlatform, parsePlatform } = await import('../lib/image/platform.js');
    const { exportImages } = await import('../lib/transfer/export.js');
    const { exportTo, readExcludes } = await import('../lib/transfer/files.js');
    if (args.format !== 'oci' && args.format !== 'docker') throw usageError(`--format must be oci or docker, got ${JSON.stringify(args.format)}`);
    const output: string = args.output ?? '-';
    if (output === '-' && io.isTTY) throw new DistError('EINVAL', 'refusing to write an archive to a terminal', { hint: 'use -o FILE or a pipe' });
    const exclude = args.excludeFrom !== undefined ? await readExcludes(args.excludeFrom) : undefined;
    const store = storePaths(args, io);
    const opts = {
      format: args.format as 'oci' | 'docker',
      platform: args.platform ? parsePlatform(args.platform) : undefined,
      hostPlatform: hostPlatform(process.platform, process.arch),
      exclude,
      signal: io.signal,
    };
    await exportTo(output === '-' ? io.stdout : output, (out) => exportImages(store, args.images, out, opts));
    return 0;
  },
};

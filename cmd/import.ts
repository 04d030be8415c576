import type { Command } from './spec.js';
import { storeFor } from './store.js';
import { print } from './io.js';

export const importCmd: Command = {
  command: 'import [file]',
  describe: 'read an image archive (OCI layout tar, docker save, gzip or zstd) into the store, verifying every blob; prints the names',
  positionals: { file: { describe: 'the archive, or - for stdin (the default)' } },
  examples: [
    ['dist import app.tar', 'an archive from dist export, docker/podman save, ctr export or skopeo'],
    ['ssh build dist export app:1 | dist import', 'from a pipe'],
  ],
  epilog: 'A delta archive (dist export --exclude-from) imports when the store holds what it left out; otherwise it names nothing and lists the missing digests. Images the archive does not name print as their digest.',
  async run(args, io) {
    const { importArchive } = await import('../lib/transfer/import.js');
    const { openArchive } = await import('../lib/transfer/files.js');
    const file: string = args.file ?? '-';
    const input = file === '-' ? io.stdin() : await openArchive(file);
    const store = await storeFor(args, io);
    const result = await importArchive(store, input, { signal: io.signal });
    await print(io, result.images.map((i) => `${i.name ?? i.descriptor.digest}\n`).join(''));
    return 0;
  },
};

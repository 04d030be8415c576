import { statSync } from 'node:fs';
import type { Command } from './spec.js';
import { storePaths } from './store.js';
import { print, readWords } from './io.js';
import { eachDigest } from './each.js';

export const path: Command = {
  command: 'path [digests..]',
  describe: 'print the absolute path of each blob (digests from the arguments, else stdin)',
  positionals: { digests: { describe: 'blob digests' } },
  options: {
    quiet: { type: 'boolean', alias: ['q', 'n'], describe: 'print the path only' },
  },
  examples: [
    ['dist path sha256:010c454d55e53059beaba4044116ea4636f8dd8181e975d893931c7e7204fffa', 'digest and path'],
    [
      'dist fetch localhost:5000/library/wordpress 4.5 mediatype:application/vnd.docker.distribution.manifest.v2+json | jq -r \'.layers[] | "dist apply ./wordpress < $(dist path -n "+.digest+")"\' | xargs -I{} -n1 sh -c "{}"',
      'apply every layer of an image to ./wordpress',
    ],
  ],
  async run(args, io) {
    const store = storePaths(args, io);
    const digests: string[] = args.digests?.length ? args.digests : await readWords(io.stdin());
    return eachDigest('path', digests, io, async (digest) => {
      const p = store.blobPath(digest);
      try {
        // Synchronous: one stat costs microseconds, and an async one starts libuv's threads.
        statSync(p);
      } catch (err) {
        if ((err as { code?: string }).code === 'ENOENT') {
          const { notFound } = await import('../lib/content/info.js');
          throw notFound(digest);
        }
        throw err;
      }
      await print(io, args.quiet ? `${p}\n` : `${digest} ${p}\n`);
    });
  },
};

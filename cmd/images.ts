import { usageError, type Command } from './spec.js';
import { humanSize, ndjson, print, table, write } from './io.js';
import { storeFor } from './store.js';

export const images: Command = {
  command: 'images [action] [args..]',
  describe: 'the named images in the store: images [ls], images tag <image> <new-name>, images rm <name>...',
  positionals: {
    action: { describe: 'ls (default), tag or rm' },
    args: { describe: 'names' },
  },
  options: {
    quiet: { type: 'boolean', alias: 'q', describe: 'names only' },
    json: { type: 'boolean', describe: 'one JSON object per line' },
  },
  examples: [
    ['dist images', 'NAME, DIGEST, TYPE, SIZE'],
    ['dist images tag localhost:5000/app:1 app:stable', 'another name for the same image'],
    ['dist images rm app:stable', 'remove a name (dist gc frees what no name reaches)'],
  ],
  async run(args, io) {
    const names = await import('../lib/image/names.js');
    const store = await storeFor(args, io);
    const action: string = args.action ?? 'ls';
    const rest: string[] = args.args ?? [];
    if (action === 'ls' || action === 'list') {
      if (rest.length) throw usageError('images ls takes no arguments');
      const all = await names.listNames(store);
      const { imageSize } = await import('../lib/image/size.js');
      if (args.quiet) {
        await print(io, all.map((n) => `${n.name}\n`).join(''));
        return 0;
      }
      // Each size reads a manifest or an index and its children: 8 at a time, not every name at once.
      const limit = (await import('p-limit')).default(8);
      const rows = await Promise.all(all.map((n) => limit(async () => ({ name: n.name, digest: n.descriptor.digest, mediaType: n.descriptor.mediaType, size: await imageSize(store, n.descriptor) }))));
      await print(
        io,
        args.json ? ndjson(rows) : table(['NAME', 'DIGEST', 'TYPE', 'SIZE'], rows.map((r) => [r.name, r.digest, shortType(r.mediaType), humanSize(r.size)])),
      );
      return 0;
    }
    if (action === 'tag') {
      if (rest.length !== 2) throw usageError('images tag takes <image> <new-name>');
      const found = await names.findImage(store, rest[0]!);
      await names.setName(store, rest[1]!, found.descriptor);
      await print(io, `${rest[1]}\n`);
      return 0;
    }
    if (action === 'rm' || action === 'remove' || action === 'delete') {
      if (rest.length === 0) throw usageError('images rm takes one or more names');
      const removed = await names.removeNames(store, rest);
      await print(io, removed.map((n) => `${n}\n`).join(''));
      const missing = rest.filter((n) => !removed.includes(n));
      for (const m of missing) await write(io.stderr, `dist images: no image named ${JSON.stringify(m)}\n`);
      return missing.length ? 1 : 0;
    }
    throw usageError(`unknown action ${JSON.stringify(action)}: ls, tag or rm`);
  },
};


function shortType(mt: string): string {
  if (mt.includes('index') || mt.includes('list')) return 'index';
  if (mt.includes('docker')) return 'docker-manifest';
  return 'oci-manifest';
}

import { usageError, wholeNumber, type Command } from './spec.js';
import { REMOTE_OPTIONS, clientFor, locatorFor } from './remote.js';
import { print, WIDEN_FROM, widenPipe, writeFdSync, type IO } from './io.js';
import { DistError } from '../lib/errors.js';
import type { Readable } from 'node:stream';
import { crypto, cryptoSoon, streamPromises } from '../lib/lazy.js';
import type { Lending } from '../lib/lend.js';

const SEED =
  'dist fetch docker.io/library/redis latest mediatype:application/vnd.docker.distribution.manifest.v2+json | jq -r \'.layers[] | "dist fetch docker.io/library/redis "+.digest + "| dist ingest --expected-digest "+.digest+" --expected-size "+(.size | tostring) +" docker.io/library/redis@"+.digest\' | xargs -I{} -P10 -n1 sh -c "{}"';

export const fetch: Command = {
  command: 'fetch <locator> <object> [hints..]',
  describe: 'stream a manifest, index or blob from a registry to stdout, exactly as served',
  positionals: {
    locator: { describe: 'repository, schemaless: docker.io/library/redis, localhost:5000/team/app' },
    object: { describe: 'a tag or a digest' },
    hints: { describe: 'mediatype:<type> hints: set the Accept header' },
  },
  options: {
    ...REMOTE_OPTIONS,
    offset: { type: 'number', describe: 'start at this byte (HTTP Range), to resume an ingest' },
  },
  examples: [
    ['dist fetch docker.io/library/redis latest mediatype:application/vnd.docker.distribution.manifest.v2+json', 'the manifest'],
    [SEED, 'parallel layer download into the store'],
    ['dist fetch localhost:5000/app sha256:... --offset $(dist active --json | jq -r \'select(.ref=="x").size\') | dist ingest --offset ... x', 'resume an interrupted ingest'],
  ],
  epilog: 'A digest object is verified while streaming: on a mismatch dist exits 1 (the next stage, dist ingest, verifies too).',
  async run(args, io) {
    const { isDigest } = await import('../lib/digest.js');
    const { isTag } = await import('../lib/remote/locator.js');
    const { MANIFEST_TYPES, isIndex, isManifest } = await import('../lib/image/mediatypes.js');
    const object: string = args.object;
    if (!isDigest(object) && !isTag(object)) {
      if (object.includes(':')) (await import('../lib/digest.js')).parseDigest(object);
      throw new DistError('EINVAL', `invalid object ${JSON.stringify(object)}: give a tag or a digest`);
    }
    const hints: string[] = (args.hints ?? []).map((h: string) => {
      if (!h.startsWith('mediatype:') || h.length === 'mediatype:'.length) {
        throw usageError(`invalid hint ${JSON.stringify(h)}: expected mediatype:<type>`);
      }
      return h.slice('mediatype:'.length);
    });
    const offset = wholeNumber(args.offset, '--offset') ?? 0;
    const loc = await locatorFor(args.locator, args);
    const client = await clientFor(args, io, 'fetch');
    try {
      const { fetchManifest, openBlob } = await import('../lib/remote/fetcher.js');
      const manifestHinted = hints.some((h) => isManifest(h) || isIndex(h));
      if (isDigest(object) && !manifestHinted) {
        try {
          const opening = openBlob(client, loc, object, { offset, signal: io.signal });
          cryptoSoon();
          const blob = await opening;
          if (io.stdoutFd !== undefined && blob.descriptor.size - offset >= WIDEN_FROM) widenPipe(io.stdoutFd);
          await streamVerified(blob.body, object, offset === 0, io);
          return 0;
        } catch (err) {
          // As the seed does: a digest the blob store does not know may be a manifest.
          if (!(err instanceof DistError && err.code === 'ENOENT')) throw err;
        }
      }
      const { bytes } = await fetchManifest(client, loc, object, hints.length ? hints : MANIFEST_TYPES, io.signal);
      await print(io, bytes.subarray(offset));
      return 0;
    } finally {
      await client.close();
    }
  },
};

/** Streams to stdout while hashing; a mismatch fails after the bytes went out (ingest re-checks). */
async function streamVerified(body: Readable & Lending, digest: string, verify: boolean, io: IO): Promise<void> {
  const { parseDigest } = await import('../lib/digest.js');
  const d = parseDigest(digest);
  const hash = crypto().createHash(d.algorithm);
  let n = 0;
  const onChunk = (chunk: Buffer) => {
    if (verify) hash.update(chunk);
    n += chunk.length;
  };
  const fd = io.stdoutFd;
  if (fd !== undefined) {
    // The process's own stdout: each chunk undici delivers is written out
    // before the next read (a blocking write to a full pipe holds the socket back).
    await body.lend((chunk) => {
      onChunk(chunk);
      writeFdSync(fd, chunk);
    });
  } else {
    // In-process callers (tests, the code-cache build) pass their own stream.
    await streamPromises().pipeline(
      body,
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          onChunk(chunk);
          yield chunk;
        }
      },
      io.stdout,
      { end: false },
    );
  }
  if (verify) {
    const found = `${d.algorithm}:${hash.digest('hex')}`;
    if (found !== d.text) {
      throw new DistError('EINTEGRITY', `${digest}: digest mismatch: the registry sent ${n} bytes hashing to ${found}; do not trust the output`, {
        digest,
        found,
      });
    }
  }
}

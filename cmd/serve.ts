import { readFileSync } from 'node:fs';
import { DistError } from '../lib/errors.js';
import type { RegistryClient } from '../lib/remote/client.js';
import { print, write } from './io.js';
import { REMOTE_OPTIONS, clientFor } from './remote.js';
import { usageError, type Command } from './spec.js';
import { storeFor } from './store.js';

export const serve: Command = {
  command: 'serve',
  describe: 'serve the store as an OCI distribution endpoint (read-only unless --push); prints the address',
  options: {
    addr: { type: 'string', describe: 'HOST:PORT to listen on (port 0: any free port)', default: '127.0.0.1:5000' },
    push: { type: 'boolean', describe: 'accept uploads: blobs (monolithic, streamed, chunked) and manifests' },
    mirror: { type: 'string', describe: 'pull-through cache of this upstream registry (URL or host[:port])' },
    'tls-cert': { type: 'string', describe: 'PEM certificate: serve HTTPS (with --tls-key)' },
    'tls-key': { type: 'string', describe: 'PEM private key for --tls-cert' },
    htpasswd: { type: 'string', describe: 'require basic auth against this file of bcrypt entries (htpasswd -B)' },
    quiet: { type: 'boolean', alias: 'q', describe: 'no access log on stderr' },
    ...REMOTE_OPTIONS,
  },
  examples: [
    ['dist serve', 'serve ./.content on 127.0.0.1:5000'],
    ['dist serve --addr 0.0.0.0:5000 --push', 'a push target on every interface'],
    ['dist serve --addr 127.0.0.1:0 --mirror https://registry-1.docker.io', 'a pull-through cache on a free port'],
  ],
  epilog: 'The first line on stdout is the address listened on; the access log (one line per request) goes to stderr. SIGTERM finishes the requests in flight, then exits 0.',
  async run(args, io) {
    const { serve: start } = await import('../lib/server/server.js');
    if (Boolean(args.tlsCert) !== Boolean(args.tlsKey)) throw usageError('--tls-cert and --tls-key go together');
    const readPem = (file: string, flag: string) => {
      try {
        return readFileSync(file);
      } catch (err) {
        throw new DistError('EINVAL', `${flag} ${file}: ${(err as Error).message}`);
      }
    };
    const tls = args.tlsCert ? { cert: readPem(args.tlsCert, '--tls-cert'), key: readPem(args.tlsKey, '--tls-key') } : undefined;
    let htpasswd;
    if (args.htpasswd) {
      const { Htpasswd } = await import('../lib/server/htpasswd.js');
      htpasswd = Htpasswd.parse(readPem(args.htpasswd, '--htpasswd').toString('utf8'), args.htpasswd);
    }
    let client: RegistryClient | undefined;
    let mirror;
    if (args.mirror) {
      const { parseLocator } = await import('../lib/remote/locator.js');
      const upstream = args.plainHttp && !/^https?:\/\//.test(args.mirror) ? `http://${args.mirror}` : args.mirror;
      parseLocator(`${upstream.replace(/\/+$/, '')}/probe`); // EINVAL now, not at the first request
      client = await clientFor(args, io, 'serve');
      mirror = { upstream, client };
    }
    const store = await storeFor(args, io);
    try {
      const serving = await start({
        store,
        addr: args.addr ?? '127.0.0.1:5000',
        push: Boolean(args.push),
        mirror,
        tls,
        htpasswd,
        onLog: args.quiet ? undefined : (line) => void write(io.stderr, `${new Date().toISOString()} ${line}\n`),
        signal: io.signal,
      });
      await print(io, `${serving.address}\n`);
      await serving.closed;
    } finally {
      await client?.close();
    }
    return 0;
  },
};

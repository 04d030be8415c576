import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Store } from '../content/store.js';
import { DistError } from '../errors.js';
import type { RegistryClient } from '../remote/client.js';
import { isRepositoryPath } from '../remote/locator.js';
import type { Htpasswd } from './htpasswd.js';
import { Catalog } from './catalog.js';
import type { Ctx, ServerState } from './context.js';
import { RegistryError, sendError } from './errors.js';
import { Mirror } from './mirror.js';
import { apiVersion, getBlob, getManifest, listCatalog, listReferrers, listTags } from './read.js';
import { Uploads } from './uploads.js';

/** The longest request path accepted (a repository is at most 255 characters, a digest 135). */
const MAX_PATH = 1024;

type Handler = (ctx: Ctx) => Promise<void>;
type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * One row of the route table: a path pattern (captures: repository, then reference), a
 * handler per method, and the push handlers, served only with `--push`.
 */
interface Route {
  path: RegExp;
  methods: Partial<Record<Method, Handler>>;
  writes?: Partial<Record<Method, (uploads: Uploads, ctx: Ctx) => Promise<void>>>;
}

/**
 * The routes of the distribution API. Without `--push` the writes, and every method a route
 * lacks, answer 405 UNSUPPORTED, as distribution does in read-only mode. Deletes of manifests
 * and blobs are never served.
 */
const ROUTES: Route[] = [
  { path: /^\/v2\/?$/, methods: { GET: apiVersion, HEAD: apiVersion } },
  { path: /^\/v2\/_catalog$/, methods: { GET: listCatalog } },
  { path: /^\/v2\/(.+)\/tags\/list$/, methods: { GET: listTags } },
  { path: /^\/v2\/(.+)\/manifests\/([^/]+)$/, methods: { GET: getManifest, HEAD: getManifest }, writes: { PUT: (u, ctx) => u.putManifest(ctx) } },
  { path: /^\/v2\/(.+)\/blobs\/uploads\/?$/, methods: {}, writes: { POST: (u, ctx) => u.start(ctx) } },
  {
    path: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/,
    methods: {},
    writes: { GET: (u, ctx) => u.status(ctx), PATCH: (u, ctx) => u.patch(ctx), PUT: (u, ctx) => u.put(ctx), DELETE: (u, ctx) => u.cancel(ctx) },
  },
  { path: /^\/v2\/(.+)\/blobs\/([^/]+)$/, methods: { GET: getBlob, HEAD: getBlob } },
  { path: /^\/v2\/(.+)\/referrers\/([^/]+)$/, methods: { GET: listReferrers } },
];

/** The handler for a method on a route, given the server's modes; undefined: 405. */
function handlerOf(route: Route, method: Method, uploads: Uploads | undefined): Handler | undefined {
  const write = route.writes?.[method];
  if (write) return uploads ? (ctx) => write(uploads, ctx) : undefined;
  return route.methods[method];
}

export interface ServeOptions {
  store: Store;
  /** `host:port`; port 0 picks a free one. */
  addr: string;
  push?: boolean;
  /** Upstream for pull-through mode, and the client to reach it with. */
  mirror?: { upstream: string; client: RegistryClient };
  /** PEM certificate and key: serve HTTPS. */
  tls?: { cert: Buffer; key: Buffer };
  /** Basic auth against these bcrypt entries. */
  htpasswd?: Htpasswd;
  /** One line per request (the access log); omitted: no log. */
  onLog?: (line: string) => void;
  /** Aborting stops accepting, drains the requests in flight, then `closed` resolves. */
  signal: AbortSignal;
}

export interface Serving {
  /** `host:port` actually listened on. */
  address: string;
  /** Resolves once the server has stopped and drained after `signal` fired. */
  closed: Promise<void>;
}

/**
 * Serves the store as an OCI distribution endpoint over node:http (keep-alive), or node:https
 * with `tls`. Every request goes through auth, then the route table; errors are answered in
 * the spec's JSON form with the status of their code (errors.ts).
 *
 * Shutdown: when `signal` aborts, the listener closes, idle keep-alive connections are closed,
 * and `closed` resolves once every request in flight has finished; open upload sessions are
 * closed with their bytes kept, so they resume after a restart.
 *
 * Errors: EADDRINUSE and the like from listen(2), as thrown by Node.
 */
export async function serve(opts: ServeOptions): Promise<Serving> {
  // Mirror fetches outlive a SIGTERM until the requests that follow them are answered.
  const fetches = new AbortController();
  const state: ServerState = {
    store: opts.store,
    catalog: new Catalog(opts.store),
    uploads: opts.push ? new Uploads(opts.store) : undefined,
    mirror: opts.mirror ? new Mirror(opts.store, opts.mirror.client, opts.mirror.upstream, fetches.signal) : undefined,
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    let sent = 0;
    if (opts.onLog) {
      // Body bytes for the access log, counted as they go out.
      const count = <F extends (...a: any[]) => any>(fn: F): F =>
        function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
          if (chunk && typeof chunk !== 'function') sent += (chunk as Buffer).length;
          return fn.call(this, chunk, ...rest);
        } as F;
      res.write = count(res.write);
      res.end = count(res.end);
      res.once('close', () => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        const path = (req.url ?? '').split('?')[0]!.slice(0, 300);
        const status = res.writableFinished ? res.statusCode : `${res.statusCode}!`;
        opts.onLog!(`${req.socket.remoteAddress ?? '-'} ${req.method} ${path} ${status} ${sent} ${ms.toFixed(1)}ms`);
      });
    }
    dispatch(req, res, state, opts).catch((err) => sendError(res, err, req.method === 'HEAD'));
  };
  const server: Server = opts.tls ? createHttps({ cert: opts.tls.cert, key: opts.tls.key }, handle) : createHttp(handle);
  // Uploads of large layers stream for as long as they take; keep-alive outlives a client's pause between requests.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 30_000;
  const [host, port] = splitAddr(opts.addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  const address = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  const closed = new Promise<void>((resolve) => {
    const stop = () => {
      // A keep-alive connection turns idle when its request in flight ends: close those as
      // they do, so close() completes once the last request has been answered.
      const sweep = setInterval(() => server.closeIdleConnections(), 100);
      server.close(() => {
        clearInterval(sweep);
        fetches.abort(new Error('dist serve stopped'));
        void (state.uploads?.closeAll() ?? Promise.resolve()).finally(resolve);
      });
      server.closeIdleConnections();
    };
    if (opts.signal.aborted) stop();
    else opts.signal.addEventListener('abort', stop, { once: true });
  });
  return { address, closed };
}

/** `host:port`, `[v6]:port` or `:port` (all interfaces). Errors: EINVAL. */
function splitAddr(addr: string): [string | undefined, number] {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr);
  if (!m || Number(m[3]) > 65535) throw new DistError('EINVAL', `invalid listen address ${JSON.stringify(addr)}: expected HOST:PORT`);
  return [m[1] ?? (m[2] || undefined), Number(m[3])];
}

async function dispatch(req: IncomingMessage, res: ServerResponse, state: ServerState, opts: ServeOptions): Promise<void> {
  const head = req.method === 'HEAD';
  if (opts.htpasswd && !(await opts.htpasswd.check(req.headers.authorization))) {
    req.resume();
    throw new RegistryError('UNAUTHORIZED', 'authentication required', undefined, { 'www-authenticate': 'Basic realm="dist"' });
  }
  const raw = req.url ?? '/';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  // The path is matched as sent, never decoded: an encoded slash or dot cannot form a name,
  // and a name or digest only reaches the store once checked against its grammar.
  if (path.length > MAX_PATH || /%|\/\.\.?(\/|$)|\/\//.test(path)) {
    req.resume();
    throw new RegistryError('NAME_INVALID', 'invalid request path');
  }
  let match: RegExpExecArray | null = null;
  const i = ROUTES.findIndex((r) => (match = r.path.exec(path)) !== null);
  if (i < 0 || !match) {
    req.resume();
    throw new RegistryError('NOT_FOUND', 'no such endpoint');
  }
  const captures = match as RegExpExecArray;
  const route = ROUTES[i]!;
  const handler = handlerOf(route, req.method as Method, state.uploads);
  if (!handler) {
    req.resume();
    const readOnly = route.writes?.[req.method as Method] !== undefined;
    throw new RegistryError('UNSUPPORTED', `${req.method} is not supported here${readOnly ? ' (read-only: start dist serve with --push)' : ''}`);
  }
  const repository = captures[1] ?? '';
  if (captures[1] !== undefined && !isRepositoryPath(repository)) {
    req.resume();
    throw new RegistryError('NAME_INVALID', `invalid repository name ${JSON.stringify(repository.slice(0, 140))}`);
  }
  await handler({ req, res, head, query, repository, ref: captures[2] ?? '', state });
}


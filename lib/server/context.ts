import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Store } from '../content/store.js';
import type { Catalog } from './catalog.js';
import type { Mirror } from './mirror.js';
import type { Uploads } from './uploads.js';

/** What every handler shares: the store and the server's modes. */
export interface ServerState {
  store: Store;
  catalog: Catalog;
  /** Present with `--push`. */
  uploads?: Uploads;
  /** Present with `--mirror`. */
  mirror?: Mirror;
}

/** One request as a handler sees it: the route's captures already checked. */
export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  head: boolean;
  query: URLSearchParams;
  /** The repository (`<name>` of the route), valid by the spec's grammar. */
  repository: string;
  /** The route's last capture: a reference, digest or upload id. */
  ref: string;
  state: ServerState;
}

/** Sends a small JSON body (or only its headers, for HEAD). */
export function sendJson(ctx: Pick<Ctx, 'res' | 'head'>, status: number, value: unknown, headers: Record<string, string> = {}, contentType = 'application/json'): void {
  const body = Buffer.from(JSON.stringify(value));
  ctx.res.writeHead(status, { ...headers, 'content-type': contentType, 'content-length': String(body.length) });
  ctx.res.end(ctx.head ? undefined : body);
}

/** Sends headers and no body. */
export function sendEmpty(ctx: Pick<Ctx, 'res'>, status: number, headers: Record<string, string> = {}): void {
  ctx.res.writeHead(status, { ...headers, 'content-length': '0' });
  ctx.res.end();
}

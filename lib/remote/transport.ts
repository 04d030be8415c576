// The transport under every registry request: an undici dispatcher (keep-alive pools, the
// proxies of the environment, TLS trust) composed with undici's redirect interceptor, and a
// dispatch handler that hands each body chunk to its consumer as undici delivers it.
import { Readable } from 'node:stream';
import type { SecureContextOptions } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { Agent, EnvHttpProxyAgent, buildConnector, interceptors, type Dispatcher } from 'undici';
import { DistError } from '../errors.js';
import type { Lending } from '../lend.js';

/** A response: status, headers (lower-case names), and a body the caller must consume. */
export interface Response {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: ResponseBody;
}

/** A response header's value; of a repeated one, the first. */
export function header(res: Response, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The proxies to use, as the environment names them; lib/ never reads the environment. */
export interface ProxySettings {
  /** HTTP_PROXY / http_proxy: for http registries. */
  http?: string;
  /** HTTPS_PROXY / https_proxy: for https registries (tunnelled with CONNECT). */
  https?: string;
  /** NO_PROXY / no_proxy: hosts reached directly (comma-separated, `.suffix`, `*`). */
  noProxy?: string;
}

export interface TransportOptions {
  /** Skip TLS verification of registries. */
  insecure?: boolean;
  /** TLS options for registries (extra CAs), built at the first https connection. */
  trust: () => SecureContextOptions;
  proxy?: ProxySettings;
}

export interface SendOptions {
  origin: string;
  /** Path and query, exactly as it goes on the request line. */
  path: string;
  method: string;
  headers: Record<string, string>;
  body?: string | Buffer | Readable;
  signal?: AbortSignal;
  /** Follow redirects (GET and HEAD only): undici drops Authorization on another origin. */
  followRedirects?: boolean;
}

/** Redirects followed per request: registries send one (to object storage), rarely two. */
const MAX_REDIRECTS = 10;
/** The longest wait for a response's headers. */
const HEADERS_TIMEOUT_MS = 60_000;
/** The longest silence inside a response body. */
const BODY_TIMEOUT_MS = 120_000;

let wasmTierSet = false;

/**
 * undici parses HTTP in wasm, compiled at its first connection. V8 tiers hot wasm up to
 * TurboFan on background threads and Node waits for those jobs at exit: +130 ms on a short
 * process (measured). So wasm stays on the baseline tier. Set at the first request, not at
 * start-up: a V8 flag changed at run time makes V8 reject the code caches compiled under the
 * old flags (+6-9 ms of every `dist path`, measured), and commands that never connect never
 * pay that.
 */
function baselineWasmOnly(): void {
  if (wasmTierSet) return;
  wasmTierSet = true;
  setFlagsFromString('--liftoff-only');
}

/**
 * One dispatcher per client: undici's Agent, or its EnvHttpProxyAgent when a proxy is set
 * (CONNECT tunnels for https registries, credentials from the proxy URL), with the redirect
 * interceptor on top.
 *
 * Concurrency: shared by all requests of a process. Errors: undici's, with their `code`
 * (the client maps them to EREMOTE).
 */
export class Transport {
  private readonly dispatcher: Dispatcher;
  private readonly base: Dispatcher;

  constructor(private readonly opts: TransportOptions) {
    const common = {
      keepAliveTimeout: 30_000,
      headersTimeout: HEADERS_TIMEOUT_MS,
      bodyTimeout: BODY_TIMEOUT_MS,
    };
    const proxy = opts.proxy ?? {};
    if (proxy.http || proxy.https) {
      // Through a proxy, undici builds its own connector from these options at once, so the
      // trust store is read now rather than at the first TLS handshake.
      const tls = { rejectUnauthorized: !opts.insecure, ...(proxy.https ? opts.trust() : {}) };
      this.base = new EnvHttpProxyAgent({
        ...common,
        // '' rather than undefined: undici would otherwise read the environment itself.
        httpProxy: proxy.http ?? '',
        httpsProxy: proxy.https ?? '',
        noProxy: proxy.noProxy ?? '',
        connect: this.connector(),
        requestTls: tls,
      });
    } else {
      this.base = new Agent({ ...common, connect: this.connector() });
    }
    this.dispatcher = this.base.compose(interceptors.redirect({ maxRedirections: 0 }));
  }

  /** Plain connections as undici makes them; TLS ones with our trust, built on first use. */
  private connector(): buildConnector.connector {
    let plain: buildConnector.connector | undefined;
    let secure: buildConnector.connector | undefined;
    return (options, callback) => {
      if (options.protocol !== 'https:') return (plain ??= buildConnector({}))(options, callback);
      secure ??= buildConnector({ rejectUnauthorized: !this.opts.insecure, ...this.opts.trust() });
      return secure(options, callback);
    };
  }

  /** Sends a request; resolves at the response headers with a body that must be consumed. */
  send(o: SendOptions): Promise<Response> {
    // Here rather than in the connector: every connection follows a send, and through a proxy
    // undici connects to the proxy with a connector of its own, which never calls ours.
    baselineWasmOnly();
    return new Promise<Response>((resolve, reject) => {
      o.signal?.throwIfAborted();
      const handler = new BodyHandler(resolve, reject, o.signal);
      this.dispatcher.dispatch(
        {
          origin: o.origin,
          path: o.path,
          method: o.method as Dispatcher.HttpMethod,
          headers: o.headers,
          body: o.body,
          ...(o.followRedirects ? { maxRedirections: MAX_REDIRECTS } : {}),
        } as Dispatcher.DispatchOptions,
        handler,
      );
    });
  }

  close(): Promise<void> {
    return this.base.close();
  }
}

/**
 * undici's handler for one request: settles the response at its headers and feeds the body.
 * The body starts paused, so nothing is read off the socket before its consumer is ready.
 */
class BodyHandler implements Dispatcher.DispatchHandler {
  private body: ResponseBody | undefined;
  private controller: Dispatcher.DispatchController | undefined;
  private readonly onAbort = () => this.controller?.abort(this.signal!.reason as Error);

  constructor(
    private readonly resolve: (r: Response) => void,
    private readonly reject: (err: Error) => void,
    private readonly signal: AbortSignal | undefined,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.signal?.aborted) controller.abort(this.signal.reason as Error);
    else this.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    controller.pause();
    this.body = new ResponseBody(controller);
    this.resolve({ statusCode, headers, body: this.body });
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.body!.deliver(chunk);
  }

  onResponseEnd(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.body!.finish();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    if (this.body) this.body.fail(err);
    else this.reject(err);
  }
}

/** Past this, `dump()` closes the connection instead of reading the rest (as undici's dump). */
const DUMP_LIMIT = 256 << 10;

/**
 * A response body: a Readable, or a `Lending` (lib/lend.ts) whose chunks go to one callback as
 * undici delivers them, with no stream in between (pull hashes and writes each chunk at once).
 * `text`, `json` and `dump` read small bodies with a size bound and a total deadline, so a
 * server that trickles a body forever fails instead of holding the command.
 */
class ResponseBody extends Readable implements Lending {
  private lender: ((chunk: Buffer) => void) | undefined;
  private settle: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private done: { error?: Error } | undefined;

  constructor(private readonly controller: Dispatcher.DispatchController) {
    super({ highWaterMark: 1 << 20 });
  }

  /** @internal undici delivered a chunk. */
  deliver(chunk: Buffer): void {
    if (this.lender) {
      try {
        this.lender(chunk);
      } catch (err) {
        this.controller.abort(err as Error);
      }
      return;
    }
    if (!this.push(chunk)) this.controller.pause();
  }

  /** @internal the body ended. */
  finish(): void {
    this.done = {};
    if (this.settle) this.settle.resolve();
    else this.push(null);
  }

  /** @internal the body broke (or a lender threw, and its error comes back here). */
  fail(err: Error): void {
    this.done = { error: err };
    if (this.settle) this.settle.reject(err);
    else this.destroy(err);
  }

  lend(onChunk: (chunk: Buffer) => void): Promise<void> {
    if (this.lender || this.readableFlowing !== null) return Promise.reject(new Error('the response body is already being read'));
    return new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
      this.lender = onChunk;
      if (this.done) {
        if (this.done.error) reject(this.done.error);
        else resolve();
        return;
      }
      this.controller.resume();
    });
  }

  override _read(): void {
    this.controller.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.done) this.controller.abort(err ?? new DistError('EREMOTE', 'response body closed before its end'));
    callback(err);
  }

  /** Reads and discards the body so the connection is kept; a large one closes it instead. */
  async dump(): Promise<void> {
    let n = 0;
    try {
      await this.lend((chunk) => {
        n += chunk.length;
        if (n > DUMP_LIMIT) throw new DistError('EREMOTE', 'body too large to dump');
      });
    } catch {
      /* the status is what the caller wanted; a broken or large body does not matter */
    }
  }

  /**
   * The body as text, at most `limit` bytes and within `deadlineMs` in all. Errors: EBADSIZE
   * past the limit, EREMOTE past the deadline (each reads no further).
   */
  async text(limit = 1 << 20, deadlineMs = 60_000, what = 'response'): Promise<string> {
    const chunks: Buffer[] = [];
    let n = 0;
    const timer = setTimeout(() => this.controller.abort(new DistError('EREMOTE', `${what}: body not received within ${deadlineMs / 1000} s`)), deadlineMs);
    try {
      await this.lend((chunk) => {
        n += chunk.length;
        if (n > limit) throw new DistError('EBADSIZE', `${what}: body is over the ${limit} byte limit`);
        chunks.push(Buffer.from(chunk)); // a lent chunk is only valid during the call
      });
    } finally {
      clearTimeout(timer);
    }
    return Buffer.concat(chunks, n).toString('utf8');
  }

  /** The body as JSON, bounded as `text`. Errors: those of `text`, EREMOTE when not JSON. */
  async json(limit?: number, deadlineMs?: number, what = 'response'): Promise<unknown> {
    const text = await this.text(limit, deadlineMs, what);
    try {
      return JSON.parse(text);
    } catch {
      throw new DistError('EREMOTE', `${what}: not valid JSON`);
    }
  }
}

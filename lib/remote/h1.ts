// HTTP/1.1 GET and HEAD for the registry client: every pull and fetch byte comes through here.
//
// Why not undici (which still sends the rare request with a body, see client.ts): Node's
// stream sockets allocate a fresh buffer for every read, and the page faults and GC of that
// fresh memory were most of `dist fetch`'s CPU. Measured on one 64 MiB blob from the loopback
// registry: a net.Socket read by 'data' events costs 0.17 s of CPU, the same socket reading
// into one reused buffer (`onread`) 0.06 s; undici, which reads by stream, 0.3 s with its
// parser. Here each connection reads into one buffer of its own, and a body can lend its
// chunks (see `lend`) so that pull and fetch hash and write them without a copy.
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { ConnectionOptions, SecureContext } from 'node:tls';
import { net, tls } from '../lazy.js';

export type Headers = Record<string, string | string[] | undefined>;

export interface H1Request {
  /** `http://host:port` or `https://host`. */
  origin: string;
  /** Path and query, already encoded. */
  path: string;
  method: 'GET' | 'HEAD';
  headers: Record<string, string>;
  signal?: AbortSignal;
}

export interface H1Response {
  statusCode: number;
  headers: Headers;
  body: H1Body;
}

export interface H1Options {
  /** For https origins: the trust store (created on first use), and whether to verify. */
  secureContext?: () => SecureContext | undefined;
  rejectUnauthorized?: boolean;
  /** No response head within this long fails the request (ETIMEDOUT). */
  headersTimeoutMs?: number;
  /** A body that stalls this long fails (ETIMEDOUT). */
  bodyTimeoutMs?: number;
  /** Idle connections are closed after this long. */
  keepAliveMs?: number;
}

/** Each connection's read buffer: the most one read can bring. */
const READ_BUFFER = 256 << 10;
/** A response head (status line and headers) larger than this is refused. */
const MAX_HEAD = 64 << 10;
/** dump() reads at most this much of an unwanted body to keep the connection; past it, closes. */
const DUMP_LIMIT = 256 << 10;

/** An error with a Node-style code, which the client's retry and message logic reads. */
function h1Error(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * Keep-alive connections per origin, for GET and HEAD without a request body. Idle connections
 * are unref'd, so they never keep the process alive. A request on a reused connection that the
 * server closed meanwhile is sent again once on a new one.
 */
export class H1Agent {
  private readonly idle = new Map<string, Connection[]>();
  private readonly live = new Set<Connection>();
  private closed = false;

  constructor(private readonly opts: H1Options = {}) {}

  async request(req: H1Request): Promise<H1Response> {
    if (this.closed) throw h1Error('ECONNRESET', 'the client is closed');
    for (;;) {
      const reused = this.takeIdle(req.origin);
      const conn = reused ?? this.connect(req.origin);
      try {
        return await conn.exchange(req, this.opts.headersTimeoutMs ?? 60_000);
      } catch (err) {
        // The server closed an idle connection as we sent on it: nothing was answered.
        if (reused && (err as { stale?: boolean }).stale && !req.signal?.aborted) continue;
        throw err;
      }
    }
  }

  /** Closes every connection, idle or busy. */
  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.live) c.destroy();
    this.live.clear();
    this.idle.clear();
  }

  private takeIdle(origin: string): Connection | undefined {
    const list = this.idle.get(origin);
    while (list?.length) {
      const c = list.pop()!;
      if (c.reusable()) return c;
    }
    return undefined;
  }

  private connect(origin: string): Connection {
    const u = new URL(origin);
    const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    const secure = u.protocol === 'https:';
    const port = Number(u.port || (secure ? 443 : 80));
    const conn = new Connection(origin, this.opts.bodyTimeoutMs ?? 120_000, (c) => this.release(c), (c) => this.forget(c));
    const onread = { buffer: conn.buffer, callback: (n: number) => conn.onRead(n) };
    const socket: Socket = secure ? this.connectTls(host, port, onread) : net().connect({ host, port, onread });
    conn.attach(socket);
    this.live.add(conn);
    return conn;
  }

  private connectTls(host: string, port: number, onread: { buffer: Buffer; callback: (n: number) => boolean }): Socket {
    // Node's types omit tls.connect's `onread` (documented, and passed on to the socket).
    const options: ConnectionOptions & { onread: typeof onread } = {
      host,
      port,
      servername: net().isIP(host) ? undefined : host,
      ALPNProtocols: ['http/1.1'],
      secureContext: this.opts.secureContext?.(),
      rejectUnauthorized: this.opts.rejectUnauthorized ?? true,
      onread,
    };
    return tls().connect(options);
  }

  private release(conn: Connection): void {
    if (this.closed) return conn.destroy();
    let list = this.idle.get(conn.origin);
    if (!list) this.idle.set(conn.origin, (list = []));
    list.push(conn);
    conn.idle(this.opts.keepAliveMs ?? 30_000);
  }

  private forget(conn: Connection): void {
    this.live.delete(conn);
    const list = this.idle.get(conn.origin);
    const i = list?.indexOf(conn) ?? -1;
    if (i >= 0) list!.splice(i, 1);
  }
}

type Framing = { kind: 'none' } | { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' };

/** One socket, carrying one exchange at a time. */
class Connection {
  readonly buffer = Buffer.allocUnsafe(READ_BUFFER);
  private socket!: Socket;
  private state: 'idle' | 'head' | 'body' | 'dead' = 'idle';
  private head: Buffer[] = [];
  private headBytes = 0;
  private sawBytes = false;
  private keep = false;
  private framing: Framing = { kind: 'none' };
  private chunked = new ChunkedDecoder();
  private body: H1Body | undefined;
  /** Settles the pending exchange() while in 'head'. */
  private waiting: { resolve: (r: H1Response) => void; reject: (e: Error) => void; method: string } | undefined;
  private pending: Buffer | undefined;
  private onAbort: (() => void) | undefined;
  private signal: AbortSignal | undefined;

  constructor(
    readonly origin: string,
    private readonly bodyTimeoutMs: number,
    private readonly onReusable: (c: Connection) => void,
    private readonly onGone: (c: Connection) => void,
  ) {}

  attach(socket: Socket): void {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('end', () => this.fail(null));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(null));
    socket.on('timeout', () => {
      if (this.state === 'idle') return this.destroy();
      const what = this.state === 'head' ? 'no response' : 'the body stalled';
      this.fail(h1Error('ETIMEDOUT', `${what} for ${Math.round(this.socket.timeout! / 1000)} s`));
    });
  }

  reusable(): boolean {
    return this.state === 'idle' && !this.socket.destroyed;
  }

  exchange(req: H1Request, headersTimeoutMs: number): Promise<H1Response> {
    const u = new URL(req.origin);
    let text = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${u.host}\r\n`;
    for (const [k, v] of Object.entries(req.headers)) {
      if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) return Promise.reject(h1Error('EINVAL', `invalid header ${JSON.stringify(k)}: contains a line break`));
      text += `${k}: ${v}\r\n`;
    }
    text += '\r\n';
    this.state = 'head';
    this.head = [];
    this.headBytes = 0;
    this.sawBytes = false;
    this.framing = { kind: 'none' };
    this.signal = req.signal;
    return new Promise<H1Response>((resolve, reject) => {
      this.waiting = { resolve, reject, method: req.method };
      if (req.signal) {
        if (req.signal.aborted) return this.fail(req.signal.reason as Error);
        this.onAbort = () => this.fail(req.signal!.reason as Error);
        req.signal.addEventListener('abort', this.onAbort, { once: true });
      }
      this.socket.ref();
      this.socket.setTimeout(headersTimeoutMs);
      this.socket.write(text);
      this.socket.resume();
    });
  }

  /** The socket read `n` bytes into `buffer`. Returns false to pause reading. */
  onRead(n: number): boolean {
    const data = this.buffer.subarray(0, n);
    if (this.state === 'head') return this.readHead(data);
    if (this.state === 'body') return this.readBody(data);
    // Bytes on an idle connection: the server is confused; do not reuse it.
    this.destroy();
    return false;
  }

  private readHead(data: Buffer): boolean {
    this.sawBytes = true;
    // The head is copied: the read buffer is reused by the next read.
    this.head.push(Buffer.from(data));
    this.headBytes += data.length;
    let all = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head);
    this.head = [all];
    let end = all.indexOf('\r\n\r\n');
    while (end >= 0 && end <= MAX_HEAD) {
      const parsed = parseHead(all.subarray(0, end).toString('latin1'));
      if (!parsed) {
        this.fail(h1Error('EPROTO', 'malformed HTTP response'));
        return false;
      }
      const rest = all.subarray(end + 4);
      if (parsed.status >= 100 && parsed.status < 200) {
        // 1xx: an interim response; the real one follows.
        all = rest;
        this.head = [rest];
        this.headBytes = rest.length;
        end = rest.indexOf('\r\n\r\n');
        continue;
      }
      return this.startBody(parsed, rest);
    }
    if (end > MAX_HEAD || this.headBytes > MAX_HEAD) {
      this.fail(h1Error('EPROTO', `response head over ${MAX_HEAD} bytes`));
      return false;
    }
    return true;
  }

  private startBody(parsed: { version: number; status: number; headers: Headers }, rest: Buffer): boolean {
    const { status, headers } = parsed;
    const waiting = this.waiting!;
    this.waiting = undefined;
    const te = String(headers['transfer-encoding'] ?? '').toLowerCase();
    const cl = headers['content-length'];
    const conn = String(headers.connection ?? '').toLowerCase();
    this.keep = parsed.version === 1 && !/\bclose\b/.test(conn);
    if (waiting.method === 'HEAD' || status === 204 || status === 304) {
      this.framing = { kind: 'none' };
    } else if (te) {
      if (!/(^|,)\s*chunked\s*$/.test(te)) {
        this.fail(h1Error('EPROTO', `unsupported transfer-encoding ${JSON.stringify(te)}`), waiting);
        return false;
      }
      this.framing = { kind: 'chunked' };
      this.chunked = new ChunkedDecoder();
    } else if (cl !== undefined) {
      const v = Array.isArray(cl) ? [...new Set(cl)] : [cl];
      if (v.length !== 1 || !/^\d+$/.test(v[0]!.trim())) {
        this.fail(h1Error('EPROTO', `invalid content-length ${JSON.stringify(cl)}`), waiting);
        return false;
      }
      this.framing = { kind: 'length', left: Number(v[0]!.trim()) };
    } else {
      this.framing = { kind: 'close' };
      this.keep = false;
    }
    this.state = 'body';
    this.socket.setTimeout(this.bodyTimeoutMs);
    const body = (this.body = new H1Body(this));
    const done = this.framing.kind === 'none' || (this.framing.kind === 'length' && this.framing.left === 0);
    if (done) {
      if (rest.length) this.keep = false;
      this.finish();
    } else if (rest.length) {
      this.pending = Buffer.from(rest);
    }
    waiting.resolve({ statusCode: status, headers, body });
    // Hold the socket until the body's reader starts (start()).
    return false;
  }

  /** The body's reader is ready (again): deliver what came with the head, then read on. */
  start(): void {
    if (this.state !== 'body') return;
    const p = this.pending;
    this.pending = undefined;
    if (p && !this.readBody(p)) return;
    if (this.state === 'body') this.socket.resume();
  }

  private readBody(data: Buffer): boolean {
    const body = this.body!;
    const f = this.framing;
    let more = true;
    if (f.kind === 'length') {
      const take = Math.min(f.left, data.length);
      f.left -= take;
      if (take < data.length) this.keep = false; // bytes past the body: do not trust the connection
      if (take) more = body.deliver(data.subarray(0, take));
      if (f.left === 0 && this.state === 'body') this.finish();
    } else if (f.kind === 'chunked') {
      const r = this.chunked.feed(data, (part) => {
        if (!body.deliver(part)) more = false;
      });
      if (r === 'error') {
        this.fail(h1Error('EPROTO', 'malformed chunked body'));
        return false;
      }
      if (r === 'done' && this.state === 'body') {
        if (this.chunked.extra) this.keep = false;
        this.finish();
      }
    } else {
      more = body.deliver(data);
    }
    return this.state === 'body' ? more : false;
  }

  /** The body is complete. */
  private finish(): void {
    const body = this.body!;
    this.body = undefined;
    this.state = 'idle';
    this.clearSignal();
    this.socket.setTimeout(0);
    body.complete();
    if (this.keep && !this.socket.destroyed) this.onReusable(this);
    else this.destroy();
  }

  /** The socket ended or failed (err null: it closed). */
  private fail(err: Error | null, waiting = this.waiting): void {
    const state = this.state;
    this.state = 'dead';
    this.clearSignal();
    if (!this.socket.destroyed) this.socket.destroy();
    this.onGone(this);
    if (state === 'head' && waiting) {
      this.waiting = undefined;
      const e = err ?? h1Error('ECONNRESET', 'the connection closed before a response');
      // Nothing came back: on a reused connection, the server had closed it (H1Agent sends again).
      if (!this.sawBytes) Object.assign(e, { stale: true });
      waiting.reject(e);
    } else if (state === 'body') {
      const body = this.body!;
      this.body = undefined;
      if (this.framing.kind === 'close' && !err) body.complete();
      else body.error(err ?? h1Error('ECONNRESET', 'the connection closed before the end of the body'));
    }
  }

  private clearSignal(): void {
    if (this.onAbort) this.signal?.removeEventListener('abort', this.onAbort);
    this.onAbort = undefined;
  }

  idle(ms: number): void {
    this.socket.setTimeout(ms);
    this.socket.unref();
    // Read on, to see the server close it.
    this.socket.resume();
  }

  /** Closes the connection; a body being read fails. */
  destroy(err?: Error): void {
    if (this.state === 'dead') return;
    this.fail(err ?? h1Error('ECONNRESET', 'the connection was closed'));
  }
}

/** Parses `HTTP/1.x NNN reason` and the header lines. Names are lowercased; repeats make arrays. */
function parseHead(text: string): { version: number; status: number; headers: Headers } | undefined {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0]!);
  if (!m) return undefined;
  const headers: Headers = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const c = line.indexOf(':');
    if (c <= 0 || /[\s]/.test(line[0]!)) return undefined;
    const name = line.slice(0, c).trim().toLowerCase();
    const value = line.slice(c + 1).trim();
    const had = headers[name];
    headers[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
  }
  return { version: Number(m[1]), status: Number(m[2]), headers };
}

/** Decodes `Transfer-Encoding: chunked` across reads, passing data parts on as views. */
class ChunkedDecoder {
  private phase: 'size' | 'data' | 'crlf' | 'trailer' = 'size';
  private line = '';
  private left = 0;
  /** Bytes came after the terminating chunk. */
  extra = false;

  feed(data: Buffer, onData: (part: Buffer) => void): 'more' | 'done' | 'error' {
    let i = 0;
    while (i < data.length) {
      if (this.phase === 'data') {
        const take = Math.min(this.left, data.length - i);
        onData(data.subarray(i, i + take));
        i += take;
        this.left -= take;
        if (this.left === 0) this.phase = 'crlf';
        continue;
      }
      const nl = data.indexOf(10, i);
      const end = nl < 0 ? data.length : nl;
      this.line += data.toString('latin1', i, end);
      if (this.line.length > 4096) return 'error';
      i = end;
      if (nl < 0) break;
      i++;
      const line = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line;
      this.line = '';
      if (this.phase === 'crlf') {
        if (line !== '') return 'error';
        this.phase = 'size';
      } else if (this.phase === 'size') {
        const m = /^([0-9a-fA-F]{1,12})\s*(;.*)?$/.exec(line);
        if (!m) return 'error';
        this.left = parseInt(m[1]!, 16);
        this.phase = this.left === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        this.extra = i < data.length;
        return 'done';
      }
    }
    return 'more';
  }
}

/**
 * A response body. Read it as a stream (each chunk a copy), or lend it (`lend`): each chunk is
 * then a view of the connection's read buffer, valid only during the call, with no copy.
 */
export class H1Body extends Readable {
  private lender: ((chunk: Buffer) => void) | undefined;
  private settle: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private ended = false;
  private failure: Error | undefined;

  constructor(private readonly conn: Connection) {
    super({ highWaterMark: 1 << 20 });
  }

  /**
   * Calls `onChunk` with each of the remaining bytes' chunks, synchronously as they are read;
   * a chunk must not be kept after the call (copy it if needed). Resolves at the end of the
   * body; rejects when it breaks or `onChunk` throws (the connection is then closed).
   */
  lend(onChunk: (chunk: Buffer) => void): Promise<void> {
    if (this.ended) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    if (this.lender || this.readableFlowing !== null || this.readableLength) {
      return Promise.reject(new Error('H1Body.lend: the body is already being read'));
    }
    return new Promise<void>((resolve, reject) => {
      this.lender = onChunk;
      this.settle = { resolve, reject };
      this.conn.start();
    });
  }

  /** Reads and drops the body: up to 256 KiB to keep the connection, else closes it. */
  async dump(): Promise<void> {
    if (this.ended || this.destroyed) return;
    let n = 0;
    await this.lend((c) => {
      n += c.length;
      if (n > DUMP_LIMIT) throw h1Error('EDUMP', 'dumped');
    }).catch((err: { code?: string }) => {
      if (err.code !== 'EDUMP') throw err;
    });
  }

  async text(): Promise<string> {
    const chunks: Buffer[] = [];
    await this.lend((c) => chunks.push(Buffer.from(c)));
    return Buffer.concat(chunks).toString('utf8');
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }

  /** From the connection: body bytes. Returns false to pause reading. */
  deliver(chunk: Buffer): boolean {
    if (this.lender) {
      try {
        this.lender(chunk);
      } catch (err) {
        this.lender = undefined;
        this.failure = err as Error;
        this.conn.destroy();
        this.settle?.reject(err as Error);
        return false;
      }
      return true;
    }
    return this.push(Buffer.from(chunk));
  }

  /** From the connection: the body is complete. */
  complete(): void {
    this.ended = true;
    if (this.lender) {
      this.lender = undefined;
      this.settle?.resolve();
    } else {
      this.push(null);
    }
  }

  /** From the connection: the body broke. */
  error(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    if (this.lender) {
      this.lender = undefined;
      this.settle?.reject(err);
    } else if (this.listenerCount('error') > 0) {
      this.destroy(err);
    } else {
      // Nobody reads it (yet): no 'error' event to crash on; a later lend() gets the error.
      this.destroy();
    }
  }

  override _read(): void {
    if (!this.lender) this.conn.start();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.ended && !this.failure) {
      const e = (this.failure = err ?? h1Error('ECONNRESET', 'the body was closed before its end'));
      if (this.lender) {
        this.lender = undefined;
        this.settle?.reject(e);
      }
      this.conn.destroy();
    }
    callback(err);
  }
}

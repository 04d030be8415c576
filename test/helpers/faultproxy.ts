import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault =
  | { status: number; retryAfter?: string }
  | { resetAfter: number }
  | { stallAfter: number }
  | { ignoreRange: true }
  | { corrupt: true }
  | { redirectTo: string }
  | { requireBasic: string }
  | { respond: { status: number; body: Buffer | string; headers?: Record<string, string> } }
  /** Reads this many bytes of the request body, then resets the client's connection; the registry never sees the request. */
  | { resetRequestAfter: number };

export interface Rule {
  /** Which requests: method and a path regexp. */
  method?: string;
  path: RegExp;
  fault: Fault;
  /** How many matching requests it applies to (default: all). */
  times?: number;
}

export interface Seen {
  method: string;
  url: string;
  range?: string;
  authorization?: string;
  status: number;
  /** Body bytes sent to the client. */
  bytes: number;
  /** Request body bytes received from the client (uploads). */
  sent: number;
  contentRange?: string;
}

/**
 * A real loopback HTTP proxy in front of a real registry, injecting faults per rule:
 * 429/503 with Retry-After, a reset mid-body, a server that ignores Range, wrong bytes,
 * redirects to another host, and a Basic-auth gate. It records every request it answered.
 */
export class FaultProxy {
  rules: Rule[] = [];
  seen: Seen[] = [];
  private server!: Server;
  host = '';

  constructor(
    private readonly upstream: string,
    private readonly bindHost = '127.0.0.1',
  ) {}

  async start(hook: { after(fn: () => unknown): void }): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.host = `${this.bindHost}:${(this.server.address() as AddressInfo).port}`;
    hook.after(() => {
      this.server.closeAllConnections();
      return new Promise((r) => this.server.close(r));
    });
    return this;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  /** Request body bytes received for requests whose path matches (and method, if given). */
  sentFor(path: RegExp, method?: string): number {
    return this.seen.filter((s) => path.test(s.url) && (!method || s.method === method)).reduce((n, s) => n + s.sent, 0);
  }

  /** Body bytes sent for requests whose path matches. */
  bytesFor(path: RegExp): number {
    return this.seen.filter((s) => path.test(s.url)).reduce((n, s) => n + s.bytes, 0);
  }

  private take(req: IncomingMessage): Fault[] {
    const out: Fault[] = [];
    for (const r of this.rules) {
      if (r.method && r.method !== req.method) continue;
      if (!r.path.test(req.url ?? '')) continue;
      if (r.times !== undefined) {
        if (r.times <= 0) continue;
        r.times--;
      }
      out.push(r.fault);
    }
    return out;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const faults = this.take(req);
    const record: Seen = {
      method: req.method ?? 'GET',
      url: req.url ?? '',
      range: req.headers.range,
      authorization: req.headers.authorization,
      status: 0,
      bytes: 0,
      sent: 0,
      contentRange: req.headers['content-range'],
    };
    this.seen.push(record);
    req.on('data', (c: Buffer) => (record.sent += c.length));
    const cut = faults.find((f): f is { resetRequestAfter: number } => 'resetRequestAfter' in f);
    if (cut) {
      req.on('data', () => {
        if (record.sent >= cut.resetRequestAfter && !req.socket.destroyed) req.socket.resetAndDestroy();
      });
      return;
    }
    const gate = faults.find((f): f is { requireBasic: string } => 'requireBasic' in f);
    if (gate && req.headers.authorization !== `Basic ${Buffer.from(gate.requireBasic).toString('base64')}`) {
      record.status = 401;
      res.writeHead(401, { 'www-authenticate': 'Basic realm="fault-proxy"', 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    const status = faults.find((f): f is { status: number; retryAfter?: string } => 'status' in f);
    if (status) {
      record.status = status.status;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (status.retryAfter !== undefined) headers['retry-after'] = status.retryAfter;
      res.writeHead(status.status, headers);
      res.end(JSON.stringify({ errors: [{ code: status.status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: 'injected fault' }] }));
      return;
    }
    const respond = faults.find((f): f is Extract<Fault, { respond: unknown }> => 'respond' in f);
    if (respond) {
      const body = Buffer.from(respond.respond.body);
      record.status = respond.respond.status;
      record.bytes = req.method === 'HEAD' ? 0 : body.length;
      res.writeHead(respond.respond.status, { 'content-length': String(body.length), ...respond.respond.headers });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    const redirect = faults.find((f): f is { redirectTo: string } => 'redirectTo' in f);
    if (redirect) {
      record.status = 307;
      res.writeHead(307, { location: `${redirect.redirectTo}${req.url}` });
      res.end();
      return;
    }
    const headers = { ...req.headers };
    delete headers.host;
    // The registry builds upload Locations from this (distribution honours X-Forwarded-Host),
    // so that uploads come back through the proxy rather than around it.
    headers['x-forwarded-host'] = this.host;
    if (faults.some((f) => 'ignoreRange' in f)) delete headers.range;
    if (gate) delete headers.authorization; // the gate is ours; the upstream registry is anonymous
    const up = new URL(req.url ?? '/', this.upstream);
    const preq = httpRequest(up, { method: req.method, headers }, (pres) => {
      record.status = pres.statusCode ?? 0;
      res.writeHead(pres.statusCode ?? 502, pres.headers);
      const reset = faults.find((f): f is { resetAfter: number } => 'resetAfter' in f);
      const corrupt = faults.some((f) => 'corrupt' in f);
      const stall = faults.find((f): f is { stallAfter: number } => 'stallAfter' in f);
      let flipped = false;
      pres.on('data', (chunk: Buffer) => {
        let c = chunk;
        if (corrupt && !flipped && c.length > 0) {
          c = Buffer.from(c);
          c[Math.floor(c.length / 2)]! ^= 0xff;
          flipped = true;
        }
        if (stall && record.bytes + c.length >= stall.stallAfter) {
          const part = c.subarray(0, Math.max(0, stall.stallAfter - record.bytes));
          record.bytes += part.length;
          if (part.length) res.write(part);
          pres.pause(); // hold the connection open, sending nothing more
          return;
        }
        if (reset && record.bytes + c.length >= reset.resetAfter) {
          const part = c.subarray(0, reset.resetAfter - record.bytes);
          record.bytes += part.length;
          res.write(part, () => {
            pres.destroy();
            res.socket?.resetAndDestroy();
          });
          return;
        }
        record.bytes += c.length;
        if (!res.write(c)) {
          pres.pause();
          res.once('drain', () => pres.resume());
        }
      });
      pres.on('end', () => res.end());
    });
    preq.on('error', () => res.destroy());
    req.pipe(preq);
  }
}

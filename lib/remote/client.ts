import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { DistError } from '../errors.js';
import { sleep } from '../sleep.js';
import { H1Agent } from './h1.js';
import { readCaFile, trustStore } from './trust.js';
import { basicHeader, parseChallenge, type Challenge, type CredentialSource, type Credentials } from './auth.js';
import type { Locator } from './locator.js';

/** A response of either transport (lib/remote/h1.ts, or undici for requests with a body). */
export interface Response {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable & { dump(): Promise<void>; json(): Promise<unknown>; text(): Promise<string> };
}

export interface RetryPolicy {
  /** Attempts per request, the first included. */
  attempts: number;
  /** First backoff; doubles per attempt, with full jitter. */
  baseMs: number;
  /** The most one wait may be. */
  maxDelayMs: number;
  /** The bound on all waiting for one request; a Retry-After past it fails at once. */
  maxTotalMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseMs: 200, maxDelayMs: 10_000, maxTotalMs: 60_000 };

export interface ClientOptions {
  credentials?: CredentialSource;
  /** Skip TLS verification. */
  insecure?: boolean;
  /** PEM file of extra CAs to trust, on top of Node's roots. */
  caFile?: string;
  /** NODE_EXTRA_CA_CERTS, when bin/dist kept node from loading it at start-up. */
  extraCaFile?: string;
  /** A one-line warning for stderr (an unreadable CA file). */
  onWarning?: (message: string) => void;
  retry?: Partial<RetryPolicy>;
  userAgent?: string;
  /** Called before each retry, with why (for --debug style diagnostics). */
  onRetry?: (info: { url: string; attempt: number; delayMs: number; reason: string }) => void;
}

export interface RequestOptions {
  method?: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** Path below the endpoint, starting with /v2/. */
  path: string;
  headers?: Record<string, string>;
  /** pull, or push (which implies pull): the token scope's actions. */
  access?: 'pull' | 'push';
  signal?: AbortSignal;
  /** Retry statuses and resets (default true). Uploads with a one-shot body pass false. */
  retry?: boolean;
  /**
   * The request body. A stream is sent once (pass `retry: false` and set content-length
   * yourself); a string or Buffer may be re-sent on retry.
   */
  body?: string | Buffer | Readable;
}

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const RETRY_ERRORS = new Set([
  // Not ECONNREFUSED: nothing listens, and retrying only delays a clear error.
  'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
]);

/**
 * The registry client: one keep-alive undici pool per process, with the bearer/basic
 * handshake, a token cache per (host, scope), retries with jittered backoff that honour
 * Retry-After, and redirects that drop Authorization when the host changes.
 *
 * Concurrency: safe to share across concurrent requests (pull fetches layers through one).
 * Errors: EREMOTE for everything the registry or network did, with a one-line message that
 * never contains credentials or tokens.
 */
export class RegistryClient {
  private readonly h1: H1Agent;
  private undici: ReturnType<typeof import('./undici.js').undiciAgent> | undefined;
  private readonly trust: ReturnType<typeof trustStore>;
  private readonly retry: RetryPolicy;
  private readonly tokens = new Map<string, Promise<string | undefined>>();
  private readonly challenges = new Map<string, Challenge>();
  private readonly creds = new Map<string, Promise<Credentials | undefined>>();
  private readonly userAgent: string;

  constructor(private readonly opts: ClientOptions = {}) {
    this.trust = trustStore(readCaFile(opts.caFile), opts);
    this.h1 = new H1Agent({
      secureContext: this.trust.context,
      rejectUnauthorized: !opts.insecure,
      headersTimeoutMs: 60_000,
      bodyTimeoutMs: 120_000,
      keepAliveMs: 30_000,
    });
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.userAgent = opts.userAgent ?? 'dist/0.1';
  }

  /** GET and HEAD through lib/remote/h1.ts; a request with a body through undici. */
  private async send(o: { origin: string; path: string; method: string; headers: Record<string, string>; body?: string | Buffer | Readable; signal?: AbortSignal }): Promise<Response> {
    if ((o.method === 'GET' || o.method === 'HEAD') && o.body === undefined) {
      return this.h1.request({ origin: o.origin, path: o.path, method: o.method, headers: o.headers, signal: o.signal });
    }
    if (!this.undici) {
      const { undiciAgent } = await import('./undici.js');
      this.undici = undiciAgent({ insecure: this.opts.insecure, trust: this.trust.options });
    }
    return this.undici.send({ ...o, method: o.method as Dispatcher.HttpMethod });
  }

  async close(): Promise<void> {
    await this.h1.close();
    await this.undici?.close();
  }

  /**
   * Sends a request to the repository's registry and returns the final response: 2xx, or a
   * 4xx the caller interprets (404, ...). 401 after auth, exhausted retries and network
   * failures throw EREMOTE. The caller must consume or dump the body.
   */
  async request(loc: Locator, req: RequestOptions): Promise<Response> {
    const scope = `repository:${loc.repository}:${req.access === 'push' ? 'pull,push' : 'pull'}`;
    let url = `${loc.scheme}://${loc.endpoint}${req.path}`;
    const started = Date.now();
    let attempt = 0;
    let authTried = false;
    let redirects = 0;
    let sameHost = true;
    for (;;) {
      attempt++;
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...req.headers };
      if (sameHost) {
        const auth = await this.authorization(loc, scope, req.signal);
        if (auth) headers.authorization = auth;
      }
      let res: Response;
      try {
        const u = new URL(url);
        res = await this.send({
          origin: u.origin,
          path: `${u.pathname}${u.search}`,
          method: req.method ?? 'GET',
          headers,
          body: req.body,
          signal: req.signal,
        });
      } catch (err) {
        if (req.signal?.aborted) throw err;
        const code = networkCode(err);
        if (req.retry !== false && code && RETRY_ERRORS.has(code)) {
          await this.backoff(url, attempt, started, undefined, `${code}`, req.signal);
          continue;
        }
        throw networkError(err, loc, url);
      }
      const status = res.statusCode;
      if (status >= 300 && status < 400 && res.headers.location) {
        await res.body.dump();
        if (++redirects > 10) throw new DistError('EREMOTE', `${url}: too many redirects`);
        const next = new URL(String(res.headers.location), url);
        // Object storage URLs are pre-signed; our registry credentials must not follow them.
        if (next.host !== new URL(url).host) sameHost = false;
        url = next.toString();
        attempt--;
        continue;
      }
      if (status === 401 && sameHost && !authTried) {
        const challenge = parseChallenge(res.headers['www-authenticate']);
        await res.body.dump();
        if (!challenge) throw new DistError('EREMOTE', `${loc.host}: unauthorized, and the registry sent no usable challenge`);
        authTried = true;
        this.challenges.set(loc.host, challenge);
        this.tokens.delete(`${loc.host}|${scope}`);
        attempt--;
        continue;
      }
      if (status === 401 || status === 403) {
        const detail = await errorText(res);
        const creds = await this.credentials(loc.host);
        throw new DistError(
          'EREMOTE',
          `${loc.host}/${loc.repository}: ${status === 401 ? 'authentication failed' : 'access denied'}${detail ? `: ${detail}` : ''}${creds ? '' : ' (no credentials found for this registry)'}`,
          { status },
        );
      }
      if (RETRY_STATUS.has(status) && req.retry !== false) {
        const retryAfter = parseRetryAfter(res.headers['retry-after']);
        const detail = await errorText(res);
        await this.backoff(url, attempt, started, retryAfter, `${status}${detail ? ` ${detail}` : ''}`, req.signal, loc);
        continue;
      }
      return res;
    }
  }

  private async backoff(
    url: string,
    attempt: number,
    started: number,
    retryAfterMs: number | undefined,
    reason: string,
    signal?: AbortSignal,
    loc?: Locator,
  ): Promise<void> {
    const { attempts, baseMs, maxDelayMs, maxTotalMs } = this.retry;
    const where = loc ? `${loc.host}/${loc.repository}` : new URL(url).host;
    if (attempt >= attempts) throw new DistError('EREMOTE', `${where}: ${reason} (gave up after ${attempt} attempts)`);
    const jittered = Math.random() * Math.min(maxDelayMs, baseMs * 2 ** (attempt - 1));
    const delay = retryAfterMs !== undefined ? Math.max(retryAfterMs, jittered) : jittered;
    if (Date.now() - started + delay > maxTotalMs) {
      throw new DistError('EREMOTE', `${where}: ${reason} (retry would exceed ${Math.round(maxTotalMs / 1000)}s)`);
    }
    this.opts.onRetry?.({ url, attempt, delayMs: Math.round(delay), reason });
    await sleep(delay, signal);
  }

  private credentials(host: string): Promise<Credentials | undefined> {
    let c = this.creds.get(host);
    if (!c) this.creds.set(host, (c = this.opts.credentials?.get(host) ?? Promise.resolve(undefined)));
    return c;
  }

  /** The Authorization header for a request, after a challenge was seen for the host. */
  private async authorization(loc: Locator, scope: string, signal?: AbortSignal): Promise<string | undefined> {
    const challenge = this.challenges.get(loc.host);
    if (!challenge) return undefined;
    const creds = await this.credentials(loc.host);
    if (challenge.scheme === 'basic') return creds ? basicHeader(creds) : undefined;
    const key = `${loc.host}|${scope}`;
    let token = this.tokens.get(key);
    if (!token) {
      token = this.fetchToken(loc, challenge, scope, creds, signal);
      this.tokens.set(key, token);
      token.catch(() => this.tokens.delete(key));
    }
    const t = await token;
    return t ? `Bearer ${t}` : undefined;
  }

  private async fetchToken(loc: Locator, challenge: Challenge, scope: string, creds: Credentials | undefined, signal?: AbortSignal): Promise<string | undefined> {
    const realm = challenge.params.realm;
    if (!realm) throw new DistError('EREMOTE', `${loc.host}: bearer challenge without a realm`);
    const u = new URL(realm);
    const service = challenge.params.service;
    const headers: Record<string, string> = { 'user-agent': this.userAgent };
    let res: Response;
    try {
      if (creds?.identityToken) {
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'dist', scope });
        if (service) form.set('service', service);
        res = await this.send({
          origin: u.origin, path: `${u.pathname}${u.search}`, method: 'POST', signal,
          headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString(),
        });
      } else {
        if (service) u.searchParams.set('service', service);
        u.searchParams.append('scope', scope);
        if (creds) headers.authorization = basicHeader(creds);
        res = await this.send({ origin: u.origin, path: `${u.pathname}${u.search}`, method: 'GET', headers, signal });
      }
    } catch (err) {
      throw networkError(err, loc, `${u.origin}${u.pathname}`);
    }
    if (res.statusCode !== 200) {
      const detail = await errorText(res);
      throw new DistError(
        'EREMOTE',
        `${loc.host}/${loc.repository}: authentication failed: token server answered ${res.statusCode}${detail ? `: ${detail}` : ''}${creds ? '' : ' (no credentials found for this registry)'}`,
        { status: res.statusCode },
      );
    }
    const body = (await res.body.json()) as { token?: string; access_token?: string };
    return body.token ?? body.access_token;
  }
}

function networkCode(err: unknown): string | undefined {
  const e = err as { code?: string; cause?: { code?: string } };
  return e?.code === 'UND_ERR_SOCKET' && e.cause?.code ? e.cause.code : e?.code ?? e?.cause?.code;
}

function networkError(err: unknown, loc: Locator, url: string): DistError {
  const code = networkCode(err);
  const host = new URL(url).host;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new DistError('EREMOTE', `cannot resolve host ${host}`, { cause: err });
  if (code === 'ECONNREFUSED') return new DistError('EREMOTE', `cannot connect to ${host}: connection refused`, { cause: err });
  if (code && /CERT|SSL|TLS|SELF_SIGNED/.test(code)) {
    return new DistError('EREMOTE', `TLS verification failed for ${host}: ${code}`, { cause: err, hint: 'use --ca-file, or --insecure to skip verification' });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new DistError('EREMOTE', `${loc.host}/${loc.repository}: ${code ?? 'network error'}: ${msg}`, { cause: err });
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

/**
 * Reads a registry error body (bounded) into one line: `CODE: message` for each of
 * `{"errors":[{code,message}]}`, else the first line of text.
 */
export async function errorText(res: Response): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of res.body) {
      if (n < 65536) chunks.push(c as Buffer);
      n += (c as Buffer).length;
    }
  } catch {
    /* a broken error body still yields the status */
  }
  const text = Buffer.concat(chunks).toString('utf8').slice(0, 65536);
  try {
    const j = JSON.parse(text);
    if (Array.isArray(j.errors) && j.errors.length) {
      return j.errors.map((e: { code?: string; message?: string }) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
    }
  } catch {
    /* not JSON */
  }
  return text.split('\n')[0]!.trim().slice(0, 200);
}

/** One line for an unexpected status, with the registry's error text. */
export async function statusError(res: Response, what: string): Promise<DistError> {
  const detail = await errorText(res);
  const code = res.statusCode === 404 ? 'ENOENT' : 'EREMOTE';
  return new DistError(code, `${what}: ${res.statusCode}${detail ? ` ${detail}` : ''}`, { status: res.statusCode });
}

import type { Readable } from 'node:stream';
import { DistError } from '../errors.js';
import { sleep } from '../sleep.js';
import { readCaFile, trustStore } from './trust.js';
import { basicHeader, parseChallenge, type Challenge, type CredentialSource, type Credentials } from './auth.js';
import type { Locator } from './locator.js';
import { Transport, type ProxySettings, type Response } from './transport.js';

export type { Response } from './transport.js';

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
  /** The most a small body (a token, an error text, a tag page) may take in all (default 60 s). */
  bodyDeadlineMs?: number;
  /** Proxies (HTTP_PROXY, HTTPS_PROXY, NO_PROXY as the caller read them). */
  proxy?: ProxySettings;
  /** Called before each retry, with why (for --debug style diagnostics). */
  onRetry?: (info: { url: string; attempt: number; delayMs: number; reason: string }) => void;
}

export interface RequestOptions {
  method?: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** Path below the endpoint, starting with /v2/. */
  path: string;
  headers?: Record<string, string>;
  /**
   * More token scopes besides this repository's, e.g. `repository:team/base:pull` for a
   * cross-repository mount from team/base. A bearer token is then asked for all of them.
   */
  extraScopes?: string[];
  /**
   * pull, or push (which implies pull): the token scope's actions on this repository; `none`
   * asks for no repository scope at all (a login check of GET /v2/).
   */
  access?: 'pull' | 'push' | 'none';
  signal?: AbortSignal;
  /** Retry statuses and resets (default true). Uploads with a one-shot body pass false. */
  retry?: boolean;
  /**
   * The request body. A stream is sent once (pass `retry: false` and set content-length
   * yourself); a string or Buffer may be re-sent on retry.
   */
  body?: string | Buffer | Readable;
}

/**
 * 408, 429 and every 5xx but 501 (Not Implemented) and 505 (HTTP Version Not Supported):
 * those two say the server will never do what was asked, so a retry only delays the error.
 */
export const retryable = (status: number): boolean => status === 408 || status === 429 || (status >= 500 && status <= 599 && status !== 501 && status !== 505);
const RETRY_ERRORS = new Set([
  // Not ECONNREFUSED: nothing listens, and retrying only delays a clear error.
  'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED', 'ECONNABORTED',
]);

/**
 * The registry client: one undici dispatcher (lib/remote/transport.ts: keep-alive pools,
 * proxies, TLS trust, redirects that drop Authorization on another origin), with the
 * bearer/basic handshake, a token cache per (host, scope), and retries with jittered backoff
 * that honour Retry-After.
 *
 * Concurrency: safe to share across concurrent requests (pull fetches layers through one).
 * Errors: EREMOTE for everything the registry or network did, with a one-line message that
 * never contains credentials or tokens.
 */
export class RegistryClient {
  private readonly transport: Transport;
  private readonly retry: RetryPolicy;
  private readonly tokens = new Map<string, Promise<string | undefined>>();
  private readonly challenges = new Map<string, Challenge>();
  private readonly creds = new Map<string, Promise<Credentials | undefined>>();
  private readonly userAgent: string;
  /** See ClientOptions.bodyDeadlineMs. */
  readonly bodyDeadlineMs: number;

  constructor(private readonly opts: ClientOptions = {}) {
    const trust = trustStore(readCaFile(opts.caFile), opts);
    this.transport = new Transport({ insecure: opts.insecure, trust: trust.options, proxy: opts.proxy });
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.userAgent = opts.userAgent ?? 'dist/0.1';
    this.bodyDeadlineMs = opts.bodyDeadlineMs ?? BODY_DEADLINE_MS;
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  /**
   * Sends a request to the repository's registry and returns the final response: 2xx, or a
   * 4xx the caller interprets (404, ...). 401 after auth, exhausted retries and network
   * failures throw EREMOTE. The caller must consume or dump the body.
   */
  async request(loc: Locator, req: RequestOptions): Promise<Response> {
    // Space-separated, as the token request's repeated `scope` parameters (split again there).
    const own = req.access === 'none' ? [] : [`repository:${loc.repository}:${req.access === 'push' ? 'pull,push' : 'pull'}`];
    const scope = [...own, ...(req.extraScopes ?? [])].join(' ');
    const url = new URL(`${loc.scheme}://${loc.endpoint}${req.path}`);
    const method = req.method ?? 'GET';
    const started = Date.now();
    let attempt = 0;
    let authTried = false;
    for (;;) {
      attempt++;
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...req.headers };
      const auth = await this.authorization(loc, scope, req.signal);
      if (auth) headers.authorization = auth;
      let res: Response;
      try {
        res = await this.transport.send({
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method,
          headers,
          body: req.body,
          signal: req.signal,
          // Blob GETs redirect to object storage; undici's redirect handler drops
          // Authorization whenever the scheme, host or port changes.
          followRedirects: method === 'GET' || method === 'HEAD',
        });
      } catch (err) {
        if (req.signal?.aborted) throw err;
        const code = networkCode(err);
        if (req.retry !== false && code && RETRY_ERRORS.has(code)) {
          await this.backoff(url, attempt, started, undefined, `${code}`, req.signal, loc);
          continue;
        }
        throw networkError(err, loc, url, this.opts.proxy);
      }
      const status = res.statusCode;
      if (status === 401 && !authTried) {
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
        const detail = await errorText(res, this.bodyDeadlineMs);
        const creds = await this.credentials(loc.host);
        throw new DistError(
          'EREMOTE',
          `${loc.host}/${loc.repository}: ${status === 401 ? 'authentication failed' : 'access denied'}${detail ? `: ${detail}` : ''}${creds ? '' : ' (no credentials found for this registry)'}`,
          { status },
        );
      }
      if (retryable(status) && req.retry !== false) {
        const retryAfter = parseRetryAfter(res.headers['retry-after']);
        const detail = await errorText(res, this.bodyDeadlineMs);
        await this.backoff(url, attempt, started, retryAfter, `${status}${detail ? ` ${detail}` : ''}`, req.signal, loc);
        continue;
      }
      return res;
    }
  }

  private async backoff(
    url: URL,
    attempt: number,
    started: number,
    retryAfterMs: number | undefined,
    reason: string,
    signal?: AbortSignal,
    loc?: Locator,
  ): Promise<void> {
    const { attempts, baseMs, maxDelayMs, maxTotalMs } = this.retry;
    const where = loc ? `${loc.host}/${loc.repository}` : url.host;
    if (attempt >= attempts) throw new DistError('EREMOTE', `${where}: ${reason} (gave up after ${attempt} attempts)`);
    const jittered = Math.random() * Math.min(maxDelayMs, baseMs * 2 ** (attempt - 1));
    const delay = retryAfterMs !== undefined ? Math.max(retryAfterMs, jittered) : jittered;
    if (Date.now() - started + delay > maxTotalMs) {
      throw new DistError('EREMOTE', `${where}: ${reason} (retry would exceed ${Math.round(maxTotalMs / 1000)}s)`);
    }
    this.opts.onRetry?.({ url: redact(url), attempt, delayMs: Math.round(delay), reason });
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
    let u: URL;
    try {
      u = new URL(realm);
    } catch {
      throw new DistError('EREMOTE', `${loc.host}: bearer challenge with an invalid realm`);
    }
    // Credentials meant for a TLS registry never travel in clear text to its token server.
    if (creds && loc.scheme === 'https' && u.protocol !== 'https:') {
      throw new DistError('EREMOTE', `${loc.host}: the token realm ${redact(u)} is not https; refusing to send credentials to it`);
    }
    const service = challenge.params.service;
    const headers: Record<string, string> = { 'user-agent': this.userAgent };
    let res: Response;
    try {
      if (creds?.identityToken) {
        // The OAuth2 form takes the scopes space-separated in one field.
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'dist' });
        if (scope) form.set('scope', scope);
        if (service) form.set('service', service);
        res = await this.transport.send({
          origin: u.origin, path: `${u.pathname}${u.search}`, method: 'POST', signal,
          headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString(),
        });
      } else {
        if (service) u.searchParams.set('service', service);
        for (const one of scope.split(' ').filter(Boolean)) u.searchParams.append('scope', one);
        if (creds) headers.authorization = basicHeader(creds);
        res = await this.transport.send({ origin: u.origin, path: `${u.pathname}${u.search}`, method: 'GET', headers, signal });
      }
    } catch (err) {
      throw networkError(err, loc, u, this.opts.proxy);
    }
    if (res.statusCode !== 200) {
      const detail = await errorText(res);
      throw new DistError(
        'EREMOTE',
        `${loc.host}/${loc.repository}: authentication failed: token server answered ${res.statusCode}${detail ? `: ${detail}` : ''}${creds ? '' : ' (no credentials found for this registry)'}`,
        { status: res.statusCode },
      );
    }
    const body = (await res.body.json(TOKEN_LIMIT, this.bodyDeadlineMs, `${loc.host}: token response`)) as { token?: string; access_token?: string };
    return body.token ?? body.access_token;
  }
}

/** Token responses are a few KiB; a server that sends more is not a token server. */
const TOKEN_LIMIT = 1 << 20;
/** Small bodies (tokens, error texts, tag pages) arrive within this, or the request fails. */
const BODY_DEADLINE_MS = 60_000;

/** A URL fit for messages: no credentials, and no query string (pre-signed URLs carry signatures). */
function redact(url: URL | string): string {
  const u = typeof url === 'string' ? new URL(url) : url;
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/** A proxy URL fit for messages: scheme, host and port only. */
function proxyName(proxy: string): string {
  try {
    const u = new URL(proxy);
    return `${u.protocol}//${u.host}`;
  } catch {
    return 'the configured proxy';
  }
}

function networkCode(err: unknown): string | undefined {
  const e = err as { code?: string; cause?: { code?: string } };
  return e?.code === 'UND_ERR_SOCKET' && e.cause?.code ? e.cause.code : e?.code ?? e?.cause?.code;
}

function networkError(err: unknown, loc: Locator, url: URL, proxy?: ProxySettings): DistError {
  const code = networkCode(err);
  const host = url.host;
  const message = err instanceof Error ? err.message : String(err);
  const via = url.protocol === 'https:' ? proxy?.https || proxy?.http : proxy?.http;
  // undici reports a refused CONNECT as "Proxy response (502) !== 200 when HTTP Tunneling",
  // and a proxy it cannot reach as the connect error of the proxy's own address.
  if (via && !bypassed(host, proxy?.noProxy)) {
    const m = /Proxy response \((\d+)\)/.exec(message);
    if (m?.[1] === '407' || /Proxy Authentication Required/.test(message)) return new DistError('EREMOTE', `proxy ${proxyName(via)} requires authentication (407)`, { cause: err });
    if (m) return new DistError('EREMOTE', `proxy ${proxyName(via)} refused to connect to ${host} (${m[1]})`, { cause: err });
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'UND_ERR_CONNECT_TIMEOUT') {
      return new DistError('EREMOTE', `cannot reach proxy ${proxyName(via)}: ${code}`, { cause: err });
    }
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new DistError('EREMOTE', `cannot resolve host ${host}`, { cause: err });
  if (code === 'ECONNREFUSED') return new DistError('EREMOTE', `cannot connect to ${host}: connection refused`, { cause: err });
  if (code && /CERT|SSL|TLS|SELF_SIGNED/.test(code)) {
    return new DistError('EREMOTE', `TLS verification failed for ${host}: ${code}`, { cause: err, hint: 'use --ca-file, or --insecure to skip verification' });
  }
  return new DistError('EREMOTE', `${loc.host}/${loc.repository}: ${code ?? 'network error'}: ${message.replaceAll(url.search, '')}`, { cause: err });
}

/** Whether NO_PROXY names the host (exact, `.suffix` or `suffix`, with or without port, or `*`). */
function bypassed(host: string, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const name = host.replace(/:\d+$/, '');
  return noProxy.split(/[,\s]+/).filter(Boolean).some((entry) => {
    if (entry === '*') return true;
    const e = entry.replace(/^\*?\./, '').replace(/:\d+$/, '');
    return name === e || name.endsWith(`.${e}`) || entry === host;
  });
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
export async function errorText(res: Response, deadlineMs = BODY_DEADLINE_MS): Promise<string> {
  let text: string;
  try {
    text = await res.body.text(ERROR_LIMIT, deadlineMs, 'error body');
  } catch {
    // A broken, huge or endless error body still yields the status.
    return '';
  }
  try {
    const j = JSON.parse(text);
    if (Array.isArray(j.errors) && j.errors.length) {
      return j.errors.map((e: { code?: string; message?: string }) => [e.code, e.message].filter(Boolean).join(': ')).join('; ').slice(0, 500);
    }
  } catch {
    /* not JSON */
  }
  return text.split('\n')[0]!.trim().slice(0, 200);
}

/** Registry error bodies are small JSON documents; past this one is cut off unread. */
const ERROR_LIMIT = 64 << 10;

/** One line for an unexpected status, with the registry's error text. */
export async function statusError(res: Response, what: string): Promise<DistError> {
  const detail = await errorText(res);
  const code = res.statusCode === 404 ? 'ENOENT' : 'EREMOTE';
  return new DistError(code, `${what}: ${res.statusCode}${detail ? ` ${detail}` : ''}`, { status: res.statusCode });
}

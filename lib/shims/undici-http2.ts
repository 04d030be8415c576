import { createRequire } from 'node:module';
import type * as Http2 from 'node:http2';

/**
 * Stands in for node:http2 inside undici, in the bundle only (scripts/build.mjs).
 *
 * undici's HTTP/2 client reads a few header constants from node:http2 when it loads, so every
 * process that fetches would load node:http2 and node:tls: 6-9 ms of a ~100 ms start-up
 * (measured), paid once per layer under `xargs -P`. dist never asks undici for HTTP/2
 * (allowH2 stays off), so the real module loads only if a session is ever opened.
 * test/shims.test.ts checks these values against the real module.
 */
export const constants = {
  HTTP2_HEADER_AUTHORITY: ':authority',
  HTTP2_HEADER_METHOD: ':method',
  HTTP2_HEADER_PATH: ':path',
  HTTP2_HEADER_SCHEME: ':scheme',
  HTTP2_HEADER_CONTENT_LENGTH: 'content-length',
  HTTP2_HEADER_EXPECT: 'expect',
  HTTP2_HEADER_STATUS: ':status',
  HTTP2_HEADER_PROTOCOL: ':protocol',
  NGHTTP2_REFUSED_STREAM: 7,
  NGHTTP2_CANCEL: 8,
};

export const connect: typeof Http2.connect = (...args: unknown[]) =>
  (createRequire(import.meta.url)('node:http2') as typeof Http2).connect(...(args as Parameters<typeof Http2.connect>));

// lib/remote/h1.ts against a loopback server that writes its responses byte by byte as each
// test scripts them: framings, keep-alive and its races, malformed responses, abort, lending.
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { H1Agent, type H1Response } from '../../lib/remote/h1.js';

interface Raw {
  origin: string;
  /** Connections accepted so far. */
  connections: number;
  /** Request heads received, in order. */
  requests: string[];
}

/**
 * A TCP server that reads each request head and calls `respond` with the socket, the head and
 * the request's number (from 0). Stopped when the test ends.
 */
async function rawServer(t: { after(fn: () => unknown): void }, respond: (socket: Socket, head: string, n: number) => unknown): Promise<Raw> {
  const raw: Raw = { origin: '', connections: 0, requests: [] };
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    raw.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        raw.requests.push(head);
        void respond(socket, head, raw.requests.length - 1);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  raw.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(r));
  });
  return raw;
}

const get = (agent: H1Agent, origin: string, path = '/x', signal?: AbortSignal) => agent.request({ origin, path, method: 'GET', headers: { accept: '*/*' }, signal });

/** Writes `parts` with a pause between each, so the client sees them in separate reads. */
async function dribble(socket: Socket, parts: (string | Buffer)[]): Promise<void> {
  for (const p of parts) {
    socket.write(p);
    await delay(5);
  }
}

async function lent(res: H1Response): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await res.body.lend((c) => chunks.push(Buffer.from(c)));
  return Buffer.concat(chunks);
}

test('h1: a content-length body, as a stream and lent; the connection is kept and reused', async (t) => {
  const raw = await rawServer(t, (s, _h, n) => {
    const body = `body ${n}`.repeat(1000);
    void dribble(s, [`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nX-Twice: a\r\nx-twice: b\r\n\r\n${body.slice(0, 10)}`, body.slice(10)]);
  });
  const agent = new H1Agent();
  t.after(() => agent.close());
  const a = await get(agent, raw.origin, '/a?b=c');
  assert.equal(a.statusCode, 200);
  assert.deepEqual(a.headers['x-twice'], ['a', 'b']);
  assert.equal(await a.body.text(), 'body 0'.repeat(1000));
  const b = await get(agent, raw.origin);
  assert.equal((await lent(b)).toString(), 'body 1'.repeat(1000));
  const c = await get(agent, raw.origin);
  const chunks: Buffer[] = [];
  for await (const x of c.body) chunks.push(x as Buffer);
  assert.equal(Buffer.concat(chunks).toString(), 'body 2'.repeat(1000));
  assert.equal(raw.connections, 1);
  assert.match(raw.requests[0]!, /^GET \/a\?b=c HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\naccept: \*\/\*$/);
});

test('h1: chunked bodies split anywhere, with extensions and trailers; 1xx responses are skipped', async (t) => {
  const raw = await rawServer(t, (s) => {
    const wire = 'HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n,\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n';
    // One byte at a time for the first response, whole for the second.
    void dribble(s, s.bytesWritten === 0 ? wire.split('') : [wire]);
  });
  const agent = new H1Agent();
  t.after(() => agent.close());
  const a = await get(agent, raw.origin);
  assert.equal(a.statusCode, 200);
  assert.equal((await lent(a)).toString(), 'hello,0123456789');
  const b = await get(agent, raw.origin);
  assert.equal(await b.body.text(), 'hello,0123456789');
  assert.equal(raw.connections, 1, 'the connection is reused after a chunked body');
});

test('h1: a body without length runs to the close; Connection: close is not reused; HEAD has no body', async (t) => {
  const raw = await rawServer(t, (s, head) => {
    if (head.startsWith('HEAD')) s.write('HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n');
    else if (head.includes('/close')) s.end('HTTP/1.1 200 OK\r\n\r\nto the end');
    else s.write('HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno');
  });
  const agent = new H1Agent();
  t.after(() => agent.close());
  assert.equal(await (await get(agent, raw.origin, '/close')).body.text(), 'to the end');
  const nf = await get(agent, raw.origin);
  assert.equal(nf.statusCode, 404);
  await nf.body.dump();
  const h = await agent.request({ origin: raw.origin, path: '/', method: 'HEAD', headers: {} });
  assert.equal(h.headers['content-length'], '999');
  await h.body.dump();
  const again = await agent.request({ origin: raw.origin, path: '/', method: 'HEAD', headers: {} });
  assert.equal(again.statusCode, 200);
  assert.equal(raw.connections, 3, 'close-delimited and Connection: close each end their connection; HEAD keeps it');
});

test('h1: a kept connection the server closed meanwhile is replaced, and the request sent again', async (t) => {
  const raw = await rawServer(t, (s, _h, n) => {
    // The second request meets the race a registry's idle timeout makes: the server closes the
    // kept connection as the request arrives, answering nothing. It is sent again, once.
    if (n === 1) s.destroy();
    else s.write(`HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n${n}`);
  });
  const agent = new H1Agent();
  t.after(() => agent.close());
  assert.equal(await (await get(agent, raw.origin)).body.text(), '0');
  assert.equal(await (await get(agent, raw.origin)).body.text(), '2');
  assert.equal(raw.connections, 2);
  // A new connection that closes unanswered is an error, not sent again.
  const closing = await rawServer(t, (s) => s.destroy());
  await assert.rejects(get(agent, closing.origin), /closed before a response|ECONNRESET/);
  assert.equal(closing.requests.length, 1);
});

test('h1: malformed responses fail with one clear error each', async (t) => {
  const cases: [string, RegExp][] = [
    ['SMTP ready\r\n\r\n', /malformed HTTP response/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n', /invalid content-length/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', /invalid content-length/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n', /unsupported transfer-encoding/],
    [`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(70_000)}\r\n\r\n`, /response head over 65536 bytes/],
    ['HTTP/1.1 200', /closed before a response/],
  ];
  const raw = await rawServer(t, (s, _h, n) => s.end(cases[n]![0]));
  const agent = new H1Agent();
  t.after(() => agent.close());
  for (const [, re] of cases) await assert.rejects(get(agent, raw.origin), re);
  const bad = await rawServer(t, (s) => s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'));
  const res = await get(agent, bad.origin);
  await assert.rejects(res.body.text(), /malformed chunked body/);
  await assert.rejects(agent.request({ origin: raw.origin, path: '/', method: 'GET', headers: { x: 'a\r\ninjected: 1' } }), /contains a line break/);
});

test('h1: a body cut short is an error (ECONNRESET), as a stream and lent', async (t) => {
  const raw = await rawServer(t, (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this'));
  const agent = new H1Agent();
  t.after(() => agent.close());
  await assert.rejects(lent(await get(agent, raw.origin)), { code: 'ECONNRESET', message: /closed before the end of the body/ });
  await assert.rejects((await get(agent, raw.origin)).body.text(), { code: 'ECONNRESET' });
  const stream = (await get(agent, raw.origin)).body;
  await assert.rejects(async () => {
    for await (const _ of stream);
  }, { code: 'ECONNRESET' });
});

test('h1: abort fails the request or the body; a throwing lender stops the body and closes the connection', async (t) => {
  const raw = await rawServer(t, (s, head) => {
    if (head.includes('/silent')) return; // never answers
    s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n');
    s.write(Buffer.alloc(1000));
  });
  const agent = new H1Agent();
  t.after(() => agent.close());
  const before = new AbortController();
  const pending = get(agent, raw.origin, '/silent', before.signal);
  setTimeout(() => before.abort(new Error('stop now')), 20);
  await assert.rejects(pending, /stop now/);

  const during = new AbortController();
  const res = await get(agent, raw.origin, '/x', during.signal);
  const reading = lent(res);
  setTimeout(() => during.abort(new Error('stop the body')), 20);
  await assert.rejects(reading, /stop the body/);

  const thrower = await get(agent, raw.origin);
  await assert.rejects(thrower.body.lend(() => {
    throw new Error('disk full');
  }), /disk full/);
  const connections = raw.connections;
  await get(agent, raw.origin, '/x');
  assert.equal(raw.connections, connections + 1, 'a connection whose body was not read to its end is not reused');
});

test('h1: a stalled response times out with ETIMEDOUT', async (t) => {
  const raw = await rawServer(t, (s, head) => {
    if (head.includes('/body')) s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
  });
  const agent = new H1Agent({ headersTimeoutMs: 100, bodyTimeoutMs: 100 });
  t.after(() => agent.close());
  await assert.rejects(get(agent, raw.origin, '/head'), { code: 'ETIMEDOUT', message: /no response for/ });
  await assert.rejects((await get(agent, raw.origin, '/body')).body.text(), { code: 'ETIMEDOUT', message: /the body stalled/ });
});

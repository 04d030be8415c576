// The least a Node fetch that verifies can do: GET one blob over plain HTTP/1.1, write it to
// stdout and hash it, then check the digest. The bench runs the seed's pipeline shape with
// `node fetch-hash.cjs URL DIGEST | node hash-stdin.cjs FILE` per layer: the floor under a
// pipeline of Node processes in which both ends verify, as dist fetch and dist ingest do. Like
// dist fetch it reads into one reused buffer, writes to a blocking fd 1, and grows the pipe to
// 1 MiB for a large blob (cmd/io.ts). No keep-alive, redirects, auth or retries.
const { spawnSync } = require('node:child_process');
const { createHash } = require('node:crypto');
const { fstatSync, writeSync } = require('node:fs');
const { connect } = require('node:net');

const url = new URL(process.argv[2]);
const digest = process.argv[3];
const hash = createHash('sha256');
const buffer = Buffer.allocUnsafe(256 << 10);
let head = Buffer.alloc(0);
let left = -1;

const body = (chunk) => {
  hash.update(chunk);
  for (let at = 0; at < chunk.length; ) at += writeSync(1, chunk, at);
  left -= chunk.length;
  if (left === 0) {
    socket.destroy();
    if (`sha256:${hash.digest('hex')}` !== digest) {
      process.stderr.write('fetch-hash: digest mismatch\n');
      process.exitCode = 1;
    }
  }
};

const socket = connect({
  host: url.hostname,
  port: Number(url.port),
  onread: {
    buffer,
    callback: (n) => {
      const data = buffer.subarray(0, n);
      if (left >= 0) return body(data);
      head = Buffer.concat([head, data]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const text = head.subarray(0, end).toString('latin1');
      if (!/^HTTP\/1\.1 200 /.test(text)) throw new Error(`fetch-hash: ${text.split('\r\n')[0]}`);
      left = Number(/\r\ncontent-length: *(\d+)/i.exec(text)[1]);
      if (left >= 8 << 20 && fstatSync(1).isFIFO()) {
        spawnSync('perl', ['-e', 'fcntl(STDOUT, 1031, 1048576)'], { stdio: ['ignore', 1, 'ignore'] });
      }
      body(head.subarray(end + 4));
    },
  },
});
socket.write(`GET ${url.pathname} HTTP/1.1\r\nhost: ${url.host}\r\nconnection: close\r\n\r\n`);

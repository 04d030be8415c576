// The least a Node ingest can do: hash stdin and write it to a file. The bench runs the seed's
// pipeline shape with `curl | node hash-stdin.cjs` per layer to show the floor that Node's
// start-up and pipe handling put under any Node tool in that pipeline (see run.mjs). It reads
// as dist ingest does from a pipe (cmd/io.ts lendPipe): into one reused buffer.
const { createHash } = require('node:crypto');
const { closeSync, fsyncSync, openSync, writeSync } = require('node:fs');
const { Socket } = require('node:net');

const hash = createHash('sha256');
const out = openSync(process.argv[2], 'w');
const buffer = Buffer.allocUnsafe(1 << 20);
const stdin = new Socket({
  fd: 0,
  readable: true,
  writable: false,
  onread: {
    buffer,
    callback: (n) => {
      const chunk = buffer.subarray(0, n);
      hash.update(chunk);
      for (let at = 0; at < n; ) at += writeSync(out, chunk, at);
    },
  },
});
stdin.on('end', () => {
  fsyncSync(out);
  closeSync(out);
  hash.digest('hex');
});
stdin.resume();

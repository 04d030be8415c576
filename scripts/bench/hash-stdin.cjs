// The least a Node ingest can do: hash stdin and write it to a file. The bench runs the seed's
// pipeline shape with `curl | node hash-stdin.cjs` per layer to show the floor that Node's
// start-up and pipe handling put under any Node tool in that pipeline (see run.mjs).
const { createHash } = require('node:crypto');
const { closeSync, fsyncSync, openSync, writeSync } = require('node:fs');

const hash = createHash('sha256');
const out = openSync(process.argv[2], 'w');
process.stdin.on('data', (chunk) => {
  hash.update(chunk);
  writeSync(out, chunk);
});
process.stdin.on('end', () => {
  fsyncSync(out);
  closeSync(out);
  hash.digest('hex');
});

// The least a Node fetch built on undici can do: GET one blob with undici's Agent and a
// dispatch handler (its fastest public API), write each chunk to stdout and hash it, then check
// the digest. Like dist fetch it writes each chunk to a blocking fd 1 before the next and grows
// the pipe to 1 MiB for a large blob. No redirects, auth or retries. The bench runs the seed's
// pipeline shape with `node fetch-undici.cjs URL DIGEST | node hash-stdin.cjs FILE` per layer:
// the floor under that pipeline for a tool that must use undici.
const { spawnSync } = require('node:child_process');
const { createHash } = require('node:crypto');
const { fstatSync, writeSync } = require('node:fs');
const { Agent } = require('./undici-part.cjs');

const url = new URL(process.argv[2]);
const digest = process.argv[3];
const hash = createHash('sha256');
const agent = new Agent();
agent.dispatch(
  { origin: url.origin, path: url.pathname, method: 'GET' },
  {
    onRequestStart() {},
    onResponseStart(_c, status, headers) {
      if (status !== 200) throw new Error(`fetch-undici: status ${status}`);
      if (Number(headers['content-length']) >= 8 << 20 && fstatSync(1).isFIFO()) {
        spawnSync('perl', ['-e', 'fcntl(STDOUT, 1031, 1048576)'], { stdio: ['ignore', 1, 'ignore'] });
      }
    },
    onResponseData(_c, chunk) {
      hash.update(chunk);
      for (let at = 0; at < chunk.length; ) at += writeSync(1, chunk, at);
    },
    onResponseEnd() {
      agent.close();
      if (`sha256:${hash.digest('hex')}` !== digest) {
        process.stderr.write('fetch-undici: digest mismatch\n');
        process.exitCode = 1;
      }
    },
    onResponseError(_c, err) {
      process.stderr.write(`fetch-undici: ${err.message}\n`);
      process.exitCode = 1;
      agent.close();
    },
  },
);

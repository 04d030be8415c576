// The least a Node client built on undici can do for a pull: GET the manifest, then the
// config and every layer, 4 at a time (as dist pull), with undici's Agent and a dispatch
// handler, discarding the bytes: no hashing, no store. The bench's floor under dist pull for a
// tool that must use undici. Usage: node pull-undici.cjs http://HOST/v2/REPO TAG MEDIATYPE
const { Agent } = require('./undici-part.cjs');

const [base, tag, mediaType] = process.argv.slice(2);
const url = new URL(base);
const agent = new Agent();
const get = (path, headers = {}) =>
  new Promise((resolve, reject) => {
    const chunks = [];
    agent.dispatch(
      { origin: url.origin, path: `${url.pathname}/${path}`, method: 'GET', headers },
      {
        onRequestStart() {},
        onResponseStart(_c, status) {
          if (status !== 200) reject(new Error(`pull-undici: ${path}: status ${status}`));
        },
        onResponseData(_c, chunk) {
          if (path.startsWith('manifests/')) chunks.push(chunk);
        },
        onResponseEnd() {
          resolve(Buffer.concat(chunks));
        },
        onResponseError(_c, err) {
          reject(err);
        },
      },
    );
  });

(async () => {
  const manifest = JSON.parse(await get(`manifests/${tag}`, { accept: mediaType }));
  const queue = [manifest.config, ...manifest.layers].map((d) => d.digest);
  const worker = async () => {
    while (queue.length) await get(`blobs/${queue.shift()}`);
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  await agent.close();
})().catch((err) => {
  process.stderr.write(`${err.message}\n`);
  process.exitCode = 1;
});

// Builds V8's code caches for the bundle parts (out/bundle/{main,undici}.cjs.cache), read by
// bin/dist at start-up (cmd/launcher.cts).
//
// A cache made right after loading would hold only the code that ran while loading; most of
// a command's functions compile lazily, when first called. So this runs the commands users
// run most, in this process, against a throwaway store and a small image served by a
// loopback HTTP server speaking the registry API, and only then serializes what V8 compiled.
// Any command that fails here fails the build: a cache trained on errors would be no use.
import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { buildImage } from '../out/test/helpers/image.js';

const repo = new URL('..', import.meta.url).pathname;
const { load, cacheFile } = createRequire(import.meta.url)(join(repo, 'out', 'bundle', 'dist.cjs'));

const work = mkdtempSync(join(tmpdir(), 'dist-code-cache-'));
try {
  const layout = join(work, 'layout');
  const image = await buildImage(layout, '1', [
    { 'etc/': null, 'etc/hostname': 'train\n', 'bin/': null, 'bin/sh': { symlink: 'busybox' } },
    { 'etc/.wh.hostname': '', 'usr/share/doc/.wh..wh..opq': '', 'usr/share/doc/README': 'x\n' },
  ]);
  const blob = (digest) => join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    // Repository `auth` takes a bearer token, got by POST with an identity token: the one
    // request with a body, so that the token path is trained too.
    if (req.method === 'POST' && url.pathname === '/token') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"t"}');
      return;
    }
    if (url.pathname.startsWith('/v2/auth/') && req.headers.authorization !== 'Bearer t') {
      const challenge = `Bearer realm="http://${req.headers.host}/token",service="train",scope="repository:auth:pull"`;
      res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    const m = /^\/v2\/(?:train|auth)\/(manifests|blobs|tags)\/(.+)$/.exec(url.pathname);
    let body;
    let type = 'application/octet-stream';
    let digest;
    if (url.pathname === '/v2/') body = Buffer.from('{}');
    else if (m?.[1] === 'tags') body = Buffer.from(JSON.stringify({ name: 'train', tags: ['1'] }));
    else if (m?.[1] === 'manifests' && (m[2] === '1' || m[2] === image.manifest)) {
      [body, type, digest] = [image.manifestBytes, image.mediaType, image.manifest];
    } else if (m?.[1] === 'blobs') {
      try {
        [body, digest] = [readFileSync(blob(m[2])), m[2]];
      } catch {}
    }
    if (!body) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NOT_FOUND","message":"not found"}]}');
      return;
    }
    res.writeHead(200, { 'content-type': type, 'content-length': body.length, ...(digest && { 'docker-content-digest': digest }) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${server.address().port}`;

  const { bundle, scripts } = load({ cache: false });
  const sink = () => new Writable({ write: (_c, _e, cb) => cb() });
  const root = join(work, 'store');
  const layer = image.layers[0];
  // bin/dist hands commands its own descriptors (stdoutFd, stdinFd), and the hot paths use them:
  // lent chunks written straight to fd 1, text printed to it, a piped stdin lent by lendPipe.
  // Train those paths, not the stream fallbacks tests use: stdout is /dev/null by descriptor,
  // and a piped stdin is a FIFO a `cat` child writes into.
  const devNull = openSync('/dev/null', 'w');
  const fifo = join(work, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const piped = (file) => {
    spawn('sh', ['-c', 'cat "$1" > "$2"', 'sh', file, fifo], { stdio: 'ignore' });
    return openSync(fifo, 'r'); // blocks until cat has opened its end
  };
  const run = async (argv, stdinFile = '/dev/null', { pipe = false } = {}) => {
    let err = '';
    const stderr = new Writable({ write: (c, _e, cb) => ((err += c), cb()) });
    const status = await bundle.main(['--root', root, ...argv], {
      stdin: () => createReadStream(stdinFile),
      stdout: sink(),
      stderr,
      env: { ...process.env, HOME: work, DOCKER_CONFIG: join(work, 'docker') },
      isTTY: false,
      stderrTTY: false,
      signal: new AbortController().signal,
      stdoutFd: devNull,
      ...(pipe && { stdinFd: piped(stdinFile) }),
    });
    if (status !== 0) throw new Error(`code cache: dist ${argv.join(' ')} exited ${status}: ${err.trim()}`);
  };
  // The parallel-download pipeline, its apply pipeline, then the higher-level commands.
  await run(['fetch', `${host}/train`, '1', `mediatype:${image.mediaType}`]);
  await run(['fetch', `${host}/train`, layer]);
  await run(['ingest', '--expected-digest', layer, '--expected-size', String(image.layerSizes[0]), `${host}/train@${layer}`], blob(layer), { pipe: true });
  await run(['ingest', '--expected-digest', layer, `${host}/train@${layer}`], blob(layer));
  await run(['path', '-n', layer]);
  await run(['apply', join(work, 'applied')], blob(layer));
  await run(['active']);
  await run(['list']);
  await run(['get', layer]);
  await run(['resolve', `${host}/train:1`]);
  await run(['tags', `${host}/train`]);
  await run(['pull', `${host}/train:1`]);
  await run(['unpack', `${host}/train:1`, join(work, 'rootfs')]);
  await run(['images']);
  await run(['verify']);
  await run(['gc', '--dry-run']);
  await run(['delete', layer]);
  mkdirSync(join(work, 'docker'));
  writeFileSync(join(work, 'docker', 'config.json'), JSON.stringify({ auths: { [host]: { identitytoken: 'refresh' } } }));
  await run(['fetch', `${host}/auth`, '1']);
  server.closeAllConnections();
  server.close();

  // The registry client set --liftoff-only at its first request (lib/remote/transport.ts).
  // V8 checks a cache against the flags it was made under, and bin/dist starts without it.
  // The flag also turned off the two it implies; --no-liftoff-only does not turn them back.
  setFlagsFromString('--no-liftoff-only --wasm-tier-up --wasm-dynamic-tiering');
  const sizes = [];
  for (const [part, script] of scripts()) {
    const data = script.createCachedData();
    writeFileSync(cacheFile(part), data);
    sizes.push(`${part} ${(data.length / 1024).toFixed(0)} KiB`);
  }
  if (sizes.length !== 2) throw new Error(`code cache: the training loaded ${sizes.length} bundle parts, not 2`);
  process.stderr.write(`code cache: ${sizes.join(', ')}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

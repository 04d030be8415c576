// dist serve's edges: TLS, basic auth with bcrypt, SIGTERM draining, bad flags.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { requireTool, sh, spawnDist } from '../helpers/cli.js';
import { buildImage } from '../helpers/image.js';
import { lowercaseTempDir } from '../helpers/podman.js';
import { busyboxStore, startServe } from '../helpers/serve.js';
import { tempDir } from '../helpers/tmp.js';

test('serve: --tls-cert/--tls-key serve HTTPS that skopeo verifies against the certificate', async (t) => {
  requireTool('openssl');
  const { root, img } = await busyboxStore(t);
  const dir = await tempDir(t);
  const certs = join(dir, 'certs');
  sh(`mkdir -p ${certs} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ${dir}/key.pem -out ${certs}/ca.crt -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null`);
  const srv = await startServe(t, root, ['--tls-cert', `${certs}/ca.crt`, '--tls-key', `${dir}/key.pem`, '--quiet']);
  assert.equal(sh(`curl -s --cacert ${certs}/ca.crt -o /dev/null -w '%{http_code}' https://${srv.host}/v2/`), '200');
  const plain = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${srv.host}/v2/`], { encoding: 'utf8' });
  assert.notEqual(plain.stdout, '200', 'no plain HTTP on a TLS port');
  const out = await lowercaseTempDir(t);
  sh(`skopeo copy --quiet --src-cert-dir ${certs} docker://${srv.host}/team/busybox:1 oci:${out}:x`);
  assert.match(sh(`cat ${out}/index.json`), new RegExp(img.manifest));
});

test('serve: --htpasswd with htpasswd -B entries: 401 with a Basic challenge without or with wrong credentials, 200 with the right ones; skopeo pulls with --src-creds', async (t) => {
  requireTool('htpasswd');
  const { root, img } = await busyboxStore(t);
  const file = join(await tempDir(t), 'htpasswd');
  writeFileSync(file, sh('htpasswd -Bbn alice "s3cret pass"') + sh('htpasswd -Bbn bob other'));
  const srv = await startServe(t, root, ['--htpasswd', file, '--quiet']);
  const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
  const none = await fetch(`${srv.url}/v2/team/busybox/manifests/1`);
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate') ?? '', /^Basic realm=/);
  assert.equal(((await none.json()) as any).errors[0].code, 'UNAUTHORIZED');
  for (const auth of [basic('alice', 'wrong'), basic('mallory', 's3cret pass'), 'Bearer x']) {
    const res = await fetch(`${srv.url}/v2/`, { headers: { authorization: auth } });
    assert.equal(res.status, 401, auth);
    await res.arrayBuffer();
  }
  const ok = await fetch(`${srv.url}/v2/team/busybox/manifests/1`, { headers: { authorization: basic('alice', 's3cret pass') } });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('docker-content-digest'), img.manifest);
  await ok.arrayBuffer();
  const out = await lowercaseTempDir(t);
  sh(`skopeo copy --quiet --src-tls-verify=false --src-creds 'bob:other' docker://${srv.host}/team/busybox:1 oci:${out}:x`);
  assert.match(sh(`cat ${out}/index.json`), new RegExp(img.manifest));
});

test('serve: an htpasswd file that is not bcrypt, a bad --addr, and --tls-cert alone each fail with one line', async (t) => {
  const root = join(await tempDir(t), 'store');
  const file = join(await tempDir(t), 'htpasswd');
  writeFileSync(file, sh('htpasswd -mbn alice pass'));
  const cases: [string[], number, RegExp][] = [
    [['--htpasswd', file], 1, /^dist serve: .*htpasswd:1: not a bcrypt entry \(use htpasswd -B\)\n$/],
    [['--addr', 'nowhere'], 1, /^dist serve: invalid listen address "nowhere": expected HOST:PORT\n$/],
    [['--addr', '127.0.0.1:0', '--tls-cert', file], 2, /^dist serve: --tls-cert and --tls-key go together\n/],
  ];
  for (const [flags, status, message] of cases) {
    const r = await spawnDist(['--root', root, 'serve', ...flags]);
    assert.equal(r.status, status, flags.join(' '));
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
  }
});

test('serve: SIGTERM lets a download in flight finish, refuses new connections, then exits 0', async (t) => {
  const root = join(await tempDir(t), 'store');
  const img = await buildImage(root, 'big/blob:1', [{ files: { 'data.bin': randomBytes(32 << 20) }, compression: 'none' }]);
  const srv = await startServe(t, root, ['--quiet']);
  const [host, port] = srv.host.split(':');
  const layer = img.layers[0]!;
  const received = new Promise<{ status: number; digest: string; bytes: number }>((resolve, reject) => {
    get({ host, port: Number(port), path: `/v2/big/blob/blobs/${layer}` }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let paused = false;
      res.on('data', (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
        // Read the first bytes, then stall: the response is in flight when SIGTERM comes.
        if (!paused) {
          paused = true;
          res.pause();
          srv.child.kill('SIGTERM');
          setTimeout(() => res.resume(), 500);
        }
      });
      res.on('end', () => resolve({ status: res.statusCode!, digest: `sha256:${hash.digest('hex')}`, bytes }));
      res.on('error', reject);
    }).on('error', reject);
  });
  const exitCode = new Promise<number | null>((r) => srv.child.on('exit', (code) => r(code)));
  const got = await received;
  assert.equal(got.status, 200);
  assert.equal(got.digest, layer, 'the whole blob arrived after SIGTERM');
  assert.equal(await exitCode, 0);
  const after = await fetch(`${srv.url}/v2/`).then(
    (r) => r.status,
    () => 'refused',
  );
  assert.equal(after, 'refused');
});

test('serve: clients that hang up mid-blob leave no open file behind and the server serves on', async (t) => {
  const root = join(await tempDir(t), 'store');
  const img = await buildImage(root, 'big/blob:1', [{ files: { 'data.bin': randomBytes(16 << 20) }, compression: 'none' }]);
  const srv = await startServe(t, root, ['--quiet']);
  const [host, port] = srv.host.split(':');
  const fds = () => readdirSync(`/proc/${srv.pid}/fd`).length;
  const warm = await fetch(`${srv.url}/v2/`);
  await warm.arrayBuffer();
  const before = fds();
  for (let i = 0; i < 20; i++) {
    await new Promise<void>((resolve, reject) => {
      const req = get({ host, port: Number(port), path: `/v2/big/blob/blobs/${img.layers[0]}`, agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (err) => (req.destroyed ? resolve() : reject(err)));
    });
  }
  // The server notices each hang-up on its own schedule; poll until its descriptors are back.
  let now = fds();
  for (let i = 0; i < 100 && now > before; i++) {
    await new Promise((r) => setTimeout(r, 50));
    now = fds();
  }
  assert.ok(now <= before, `open descriptors: ${before} before, ${now} after`);
  const res = await fetch(`${srv.url}/v2/big/blob/blobs/${img.layers[0]}`);
  assert.equal(createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest('hex'), img.layers[0]!.slice(7));
});

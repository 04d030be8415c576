// A pull-conformance check of our own (the official suite needs Go >= 1.23, which Debian does
// not have): every row of the endpoint table in reference/distribution-and-build.md §3.1, for
// a manifest and for an index, against the real bin/dist serve.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { addToIndex, buildImage, buildIndex, type BuiltImage } from '../helpers/image.js';
import { startServe, type Served } from '../helpers/serve.js';
import { tempDir } from '../helpers/tmp.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

interface Fixture {
  root: string;
  img: BuiltImage;
  arm: BuiltImage;
  index: { digest: string; size: number; bytes: Buffer };
  referrer: { digest: string; bytes: Buffer };
  sig: { digest: string; bytes: Buffer };
}

/** A store holding an image under three name forms, an index, and two referrers of the image. */
async function fixture(t: any): Promise<Fixture> {
  const root = join(await tempDir(t), 'store');
  const img = await buildImage(root, 'localhost:5000/conf/app:1', [{ 'etc/os-release': 'ID=conf\n' }, { 'data/x': Buffer.alloc(300_000, 7) }]);
  await addToIndex(root, { mediaType: img.mediaType, digest: img.manifest, size: img.manifestSize, annotations: { 'org.opencontainers.image.ref.name': 'conf/app:2' } });
  await addToIndex(root, { mediaType: img.mediaType, digest: img.manifest, size: img.manifestSize, annotations: { 'org.opencontainers.image.ref.name': 'conf/bare' } });
  const arm = await buildImage(root, undefined, [{ arch: 'arm64\n' }], { platform: { os: 'linux', architecture: 'arm64' } });
  const index = await buildIndex(root, 'conf/multi:idx', [
    { image: img, platform: { os: 'linux', architecture: 'amd64' } },
    { image: arm, platform: { os: 'linux', architecture: 'arm64' } },
  ]);
  for (let i = 0; i < 5; i++) await addToIndex(root, { mediaType: img.mediaType, digest: img.manifest, size: img.manifestSize, annotations: { 'org.opencontainers.image.ref.name': `conf/app:t${i}` } });
  const put = async (bytes: Buffer) => {
    await writeFile(join(root, 'blobs', 'sha256', sha(bytes).slice(7)), bytes);
    return sha(bytes);
  };
  const empty = await put(Buffer.from('{}'));
  const artifact = (artifactType: string, annotations: Record<string, string>) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 },
        layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 }],
        subject: { mediaType: img.mediaType, digest: img.manifest, size: img.manifestSize },
        annotations,
      }),
    );
  const refBytes = artifact('application/vnd.dist.sbom', { 'org.example.kind': 'sbom' });
  const sigBytes = artifact('application/vnd.dist.signature', { 'org.example.kind': 'sig' });
  // Unnamed index.json entries: the referrers API finds manifests that no tag names.
  for (const b of [refBytes, sigBytes]) await addToIndex(root, { mediaType: OCI_MANIFEST, digest: await put(b), size: b.length });
  return { root, img, arm, index, referrer: { digest: sha(refBytes), bytes: refBytes }, sig: { digest: sha(sigBytes), bytes: sigBytes } };
}

async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  assert.ok(Array.isArray(body.errors) && body.errors.length === 1 && typeof body.errors[0]!.message === 'string', JSON.stringify(body));
  return body.errors[0]!.code;
}

let shared: Promise<{ fx: Fixture; srv: Served }> | undefined;
const cleanups: (() => unknown)[] = [];
const fileHook = { after: (fn: () => unknown) => void cleanups.push(fn) };
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

/** One server for the read-only rows, started by the first test and stopped after the file. */
function server() {
  shared ??= (async () => {
    const fx = await fixture(fileHook);
    const srv = await startServe(fileHook, fx.root, ['--quiet']);
    return { fx, srv };
  })();
  return shared;
}

test('conformance: GET and HEAD /v2/ answer 200 with the API version header', async () => {
  const { srv } = await server();
  for (const method of ['GET', 'HEAD']) {
    const res = await fetch(`${srv.url}/v2/`, { method });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    await res.arrayBuffer();
  }
});

for (const kind of ['manifest', 'index'] as const) {
  test(`conformance: a ${kind} by tag and by digest, GET and HEAD: exact bytes, Content-Type, Content-Length, Docker-Content-Digest, ETag and If-None-Match`, async () => {
    const { fx, srv } = await server();
    const want = kind === 'manifest' ? { repo: 'conf/app', tag: '1', digest: fx.img.manifest, bytes: fx.img.manifestBytes, type: OCI_MANIFEST } : { repo: 'conf/multi', tag: 'idx', digest: fx.index.digest, bytes: fx.index.bytes, type: OCI_INDEX };
    for (const ref of [want.tag, want.digest]) {
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(`${srv.url}/v2/${want.repo}/manifests/${ref}`, { method, headers: { accept: '*/*' } });
        assert.equal(res.status, 200, `${method} ${ref}`);
        assert.equal(res.headers.get('content-type'), want.type);
        assert.equal(res.headers.get('content-length'), String(want.bytes.length));
        assert.equal(res.headers.get('docker-content-digest'), want.digest);
        assert.equal(res.headers.get('etag'), `"${want.digest}"`);
        const body = Buffer.from(await res.arrayBuffer());
        assert.deepEqual(body, method === 'GET' ? want.bytes : Buffer.alloc(0));
      }
      const cached = await fetch(`${srv.url}/v2/${want.repo}/manifests/${ref}`, { headers: { 'if-none-match': `"${want.digest}"` } });
      assert.equal(cached.status, 304);
      await cached.arrayBuffer();
    }
    // Content by digest is served under any repository.
    const other = await fetch(`${srv.url}/v2/some/other/repo/manifests/${want.digest}`);
    assert.equal(other.status, 200);
    assert.deepEqual(Buffer.from(await other.arrayBuffer()), want.bytes);
  });
}

test('conformance: the three name forms (HOST/REPO:TAG, REPO:TAG, bare REPO as latest) and unknown tags', async () => {
  const { fx, srv } = await server();
  for (const [repo, tag] of [['conf/app', '1'], ['conf/app', '2'], ['conf/bare', 'latest']]) {
    const res = await fetch(`${srv.url}/v2/${repo}/manifests/${tag}`);
    assert.equal(res.status, 200, `${repo}:${tag}`);
    assert.equal(res.headers.get('docker-content-digest'), fx.img.manifest);
    await res.arrayBuffer();
  }
  const missing = await fetch(`${srv.url}/v2/conf/app/manifests/nope`);
  assert.equal(missing.status, 404);
  assert.equal(await errorCode(missing), 'MANIFEST_UNKNOWN');
  const unknownDigest = await fetch(`${srv.url}/v2/conf/app/manifests/${sha('nothing')}`);
  assert.equal(unknownDigest.status, 404);
  assert.equal(await errorCode(unknownDigest), 'MANIFEST_UNKNOWN');
});

test('conformance: blobs GET/HEAD with Docker-Content-Digest, Content-Length and Accept-Ranges; Range gives 206, a bad range 416', async () => {
  const { fx, srv } = await server();
  const digest = fx.img.layers[1]!;
  const size = fx.img.layerSizes[1]!;
  const whole = await fetch(`${srv.url}/v2/conf/app/blobs/${digest}`);
  assert.equal(whole.status, 200);
  assert.equal(whole.headers.get('docker-content-digest'), digest);
  assert.equal(whole.headers.get('content-length'), String(size));
  assert.equal(whole.headers.get('accept-ranges'), 'bytes');
  const bytes = Buffer.from(await whole.arrayBuffer());
  assert.equal(sha(bytes), digest);
  const head = await fetch(`${srv.url}/v2/any/repo/blobs/${digest}`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-length'), String(size));
  await head.arrayBuffer();
  for (const [range, start, end] of [['bytes=10-99', 10, 99], [`bytes=${size - 5}-`, size - 5, size - 1], ['bytes=-7', size - 7, size - 1]] as const) {
    const res = await fetch(`${srv.url}/v2/conf/app/blobs/${digest}`, { headers: { range } });
    assert.equal(res.status, 206, range);
    assert.equal(res.headers.get('content-range'), `bytes ${start}-${end}/${size}`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes.subarray(start, end + 1));
  }
  const bad = await fetch(`${srv.url}/v2/conf/app/blobs/${digest}`, { headers: { range: `bytes=${size}-` } });
  assert.equal(bad.status, 416);
  assert.equal(bad.headers.get('content-range'), `bytes */${size}`);
  assert.equal(await errorCode(bad), 'RANGE_INVALID');
  const unknown = await fetch(`${srv.url}/v2/conf/app/blobs/${sha('nothing')}`);
  assert.equal(unknown.status, 404);
  assert.equal(await errorCode(unknown), 'BLOB_UNKNOWN');
});

test('conformance: tags/list in lexical order with n/last and Link; n=0 is empty with no Link; a negative n is 400 PAGINATION_NUMBER_INVALID; an unknown repository 404', async () => {
  const { srv } = await server();
  const all = await fetch(`${srv.url}/v2/conf/app/tags/list`);
  assert.deepEqual(await all.json(), { name: 'conf/app', tags: ['1', '2', 't0', 't1', 't2', 't3', 't4'] });
  const walked: string[] = [];
  let next: string | undefined = '/v2/conf/app/tags/list?n=3';
  let pages = 0;
  while (next) {
    const res: Response = await fetch(`${srv.url}${next}`);
    const body = (await res.json()) as { tags: string[] };
    walked.push(...body.tags);
    pages++;
    const link = res.headers.get('link');
    if (link) assert.match(link, /^<\/v2\/conf\/app\/tags\/list\?last=[^&]+&n=3>; rel="next"$/);
    next = link ? /<([^>]+)>/.exec(link)![1] : undefined;
    if (next) assert.equal(body.tags.length, 3, 'exactly n when a Link is sent');
  }
  assert.deepEqual(walked, ['1', '2', 't0', 't1', 't2', 't3', 't4']);
  assert.equal(pages, 3);
  const zero = await fetch(`${srv.url}/v2/conf/app/tags/list?n=0`);
  assert.deepEqual(await zero.json(), { name: 'conf/app', tags: [] });
  assert.equal(zero.headers.get('link'), null);
  const negative = await fetch(`${srv.url}/v2/conf/app/tags/list?n=-1`);
  assert.equal(negative.status, 400);
  assert.equal(await errorCode(negative), 'PAGINATION_NUMBER_INVALID');
  const after = await fetch(`${srv.url}/v2/conf/app/tags/list?last=t2`);
  assert.deepEqual(((await after.json()) as { tags: string[] }).tags, ['t3', 't4']);
  const unknown = await fetch(`${srv.url}/v2/no/such/tags/list`);
  assert.equal(unknown.status, 404);
  assert.equal(await errorCode(unknown), 'NAME_UNKNOWN');
});

test('conformance: _catalog lists repositories with n/last and Link', async () => {
  const { srv } = await server();
  const all = await fetch(`${srv.url}/v2/_catalog`);
  assert.deepEqual(await all.json(), { repositories: ['conf/app', 'conf/bare', 'conf/multi'] });
  const first = await fetch(`${srv.url}/v2/_catalog?n=2`);
  assert.deepEqual(await first.json(), { repositories: ['conf/app', 'conf/bare'] });
  assert.equal(first.headers.get('link'), '</v2/_catalog?last=conf%2Fbare&n=2>; rel="next"');
  const second = await fetch(`${srv.url}/v2/_catalog?last=conf%2Fbare&n=2`);
  assert.deepEqual(await second.json(), { repositories: ['conf/multi'] });
  assert.equal(second.headers.get('link'), null);
});

test('conformance: referrers of a manifest (with artifactType filter and OCI-Filters-Applied), of the index (none), and a bad digest 400', async () => {
  const { fx, srv } = await server();
  const res = await fetch(`${srv.url}/v2/conf/app/referrers/${fx.img.manifest}`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), OCI_INDEX);
  const body = (await res.json()) as { mediaType: string; manifests: any[] };
  assert.equal(body.mediaType, OCI_INDEX);
  const expected = [
    { mediaType: OCI_MANIFEST, digest: fx.referrer.digest, size: fx.referrer.bytes.length, artifactType: 'application/vnd.dist.sbom', annotations: { 'org.example.kind': 'sbom' } },
    { mediaType: OCI_MANIFEST, digest: fx.sig.digest, size: fx.sig.bytes.length, artifactType: 'application/vnd.dist.signature', annotations: { 'org.example.kind': 'sig' } },
  ].sort((a, b) => (a.digest < b.digest ? -1 : 1));
  assert.deepEqual(body.manifests, expected);
  const filtered = await fetch(`${srv.url}/v2/conf/app/referrers/${fx.img.manifest}?artifactType=application/vnd.dist.signature`);
  assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
  assert.deepEqual(((await filtered.json()) as { manifests: any[] }).manifests.map((m) => m.digest), [fx.sig.digest]);
  const none = await fetch(`${srv.url}/v2/conf/multi/referrers/${fx.index.digest}`);
  assert.equal(none.status, 200);
  assert.deepEqual(((await none.json()) as { manifests: any[] }).manifests, []);
  const bad = await fetch(`${srv.url}/v2/conf/app/referrers/sha256:totallywrong`);
  assert.equal(bad.status, 400);
  assert.equal(await errorCode(bad), 'DIGEST_INVALID');
});

test('conformance: read-only by default: every write and delete is 405 UNSUPPORTED and the store is unchanged', async () => {
  const { fx, srv } = await server();
  const before = await readdir(join(fx.root, 'blobs', 'sha256'));
  const writes: [string, string][] = [
    ['POST', '/v2/conf/app/blobs/uploads/'],
    ['PUT', '/v2/conf/app/manifests/new'],
    ['DELETE', `/v2/conf/app/manifests/${fx.img.manifest}`],
    ['DELETE', `/v2/conf/app/blobs/${fx.img.layers[0]}`],
    ['PATCH', '/v2/conf/app/blobs/uploads/0f8fad5b-d9cb-469f-a165-70867728950e'],
  ];
  for (const [method, path] of writes) {
    const res = await fetch(`${srv.url}${path}`, { method, body: method === 'GET' ? undefined : '{}' });
    assert.equal(res.status, 405, `${method} ${path}`);
    assert.equal(await errorCode(res), 'UNSUPPORTED');
  }
  assert.deepEqual(await readdir(join(fx.root, 'blobs', 'sha256')), before);
});

test('conformance: paths and names that try to leave the store get 400 or 404 and touch nothing outside', async () => {
  const { fx, srv } = await server();
  const outside = join(fx.root, '..', 'secret');
  await mkdir(outside, { recursive: true });
  await writeFile(join(outside, 'data'), 'secret\n');
  const net = await import('node:net');
  // Raw requests: fetch would normalise `..` away before sending.
  const raw = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const [host, port] = srv.host.split(':');
      const s = net.connect(Number(port), host!, () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
      let text = '';
      s.on('data', (c) => (text += c));
      s.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1])));
      s.on('error', reject);
    });
  const attacks = [
    '/v2/../../secret/data',
    '/v2/conf/app/blobs/sha256:../../../secret/data',
    '/v2/conf/app/blobs/sha256%3A..%2F..%2Fsecret',
    '/v2/conf%2F..%2F..%2Fsecret/manifests/1',
    '/v2/conf/../../secret/manifests/1',
    '/v2/conf/app/manifests/..%2F..%2Findex.json',
    '/v2/conf/app/manifests/../../../index.json',
    `/v2/${'a/'.repeat(200)}b/manifests/1`,
    `/v2/conf/app/blobs/sha256:${'0'.repeat(5000)}`,
    '/v2/CONF/App/tags/list',
    '/v2/conf//app/tags/list',
  ];
  for (const path of attacks) {
    const status = await raw(path);
    assert.ok(status === 400 || status === 404, `${path.slice(0, 80)}: ${status}`);
  }
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { openStore } from '../../lib/content/store.js';
import { openWriter } from '../../lib/content/writer.js';
import { writeBlob } from '../../lib/content/ingest.js';
import { abortIngest, blobInfo, deleteBlob, listBlobs, listIngests } from '../../lib/content/info.js';
import { tempDir } from '../helpers/tmp.js';
import { leftovers } from '../helpers/store.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const body = (b: Buffer | string) => () => Readable.from([Buffer.from(b)]);

test('store: a new store is an OCI layout', async (t) => {
  const root = await tempDir(t);
  const store = await openStore(join(root, 's'));
  assert.deepEqual(JSON.parse(await readFile(join(store.root, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  const index = JSON.parse(await readFile(store.indexPath, 'utf8'));
  assert.equal(index.schemaVersion, 2);
  assert.deepEqual(index.manifests, []);
});

test('store: commit makes a verified, read-only blob and removes the ingest', async (t) => {
  const store = await openStore(await tempDir(t));
  const data = Buffer.from('hello world\n');
  const r = await writeBlob(store, body(data), { ref: 'r1', expected: sha(data), size: data.length });
  assert.deepEqual(r, { digest: sha(data), existed: false, written: data.length });
  assert.deepEqual(await readFile(store.blobPath(sha(data))), data);
  assert.equal((await stat(store.blobPath(sha(data)))).mode & 0o777, 0o444);
  assert.deepEqual(await leftovers(store.root), { blobs: [sha(data)], ingest: [] });
  assert.equal((await blobInfo(store, sha(data))).size, data.length);
});

test('store: without an expected digest the computed digest is returned', async (t) => {
  const store = await openStore(await tempDir(t));
  const r = await writeBlob(store, body('abc'), { ref: 'anon' });
  assert.equal(r.digest, sha('abc'));
});

test('store: already-exists returns without opening the body', async (t) => {
  const store = await openStore(await tempDir(t));
  await writeBlob(store, body('x'), { ref: 'a', expected: sha('x') });
  let opened = false;
  const r = await writeBlob(store, () => {
    opened = true;
    return Readable.from([Buffer.from('x')]);
  }, { ref: 'b', expected: sha('x') });
  assert.equal(r.existed, true);
  assert.equal(opened, false);
});

test('store: digest mismatch commits nothing and discards the ingest', async (t) => {
  const store = await openStore(await tempDir(t));
  await assert.rejects(writeBlob(store, body('evil'), { ref: 'r', expected: sha('good'), size: 4 }), (err: any) => {
    assert.equal(err.code, 'EINTEGRITY');
    assert.match(err.message, new RegExp(`digest mismatch: expected ${sha('good')}, got ${sha('evil')}`));
    return true;
  });
  assert.deepEqual(await leftovers(store.root), { blobs: [], ingest: [] });
});

test('store: a stream longer than the expected size fails without reading beyond it', async (t) => {
  const store = await openStore(await tempDir(t));
  let pulled = 0;
  const endless = () =>
    new Readable({
      read() {
        pulled += 65536;
        this.push(Buffer.alloc(65536, 1));
      },
    });
  await assert.rejects(writeBlob(store, endless, { ref: 'big', size: 100_000 }), { code: 'EBADSIZE' });
  // Read-ahead is bounded by stream buffers (1 MiB), not by the stream's length.
  assert.ok(pulled < 4 * 1024 * 1024, `pulled ${pulled} bytes`);
  assert.deepEqual(await leftovers(store.root), { blobs: [], ingest: [] });
});

test('store: a short stream keeps the ingest for resume, and the resume completes', async (t) => {
  const store = await openStore(await tempDir(t));
  const data = Buffer.alloc(300_000, 7);
  const digest = sha(data);
  await assert.rejects(
    writeBlob(store, body(data.subarray(0, 100_000)), { ref: 'layer', expected: digest, size: data.length }),
    (err: any) => err.code === 'EBADSIZE' && /kept for resume/.test(err.message),
  );
  const [active] = await listIngests(store);
  assert.equal(active!.ref, 'layer');
  assert.equal(active!.size, 100_000);
  assert.equal(active!.total, 300_000);
  assert.deepEqual((await leftovers(store.root)).blobs, []);

  // Resume with the rest only (fetch --offset): bodyOffset says where the stream starts.
  let held = -1;
  const r = await writeBlob(store, body(data.subarray(100_000)), {
    ref: 'layer', expected: digest, size: data.length, bodyOffset: 100_000, onOpen: (h) => (held = h),
  });
  assert.equal(held, 100_000);
  assert.equal(r.written, 200_000);
  assert.deepEqual(await leftovers(store.root), { blobs: [digest], ingest: [] });
});

test('store: a restarted full stream skips the bytes already held', async (t) => {
  const store = await openStore(await tempDir(t));
  const data = Buffer.alloc(50_000, 3);
  await assert.rejects(writeBlob(store, body(data.subarray(0, 20_000)), { ref: 'x', expected: sha(data), size: data.length }));
  const r = await writeBlob(store, body(data), { ref: 'x', expected: sha(data), size: data.length });
  assert.equal(r.written, 30_000);
  assert.deepEqual(await readFile(store.blobPath(sha(data))), data);
});

test('store: a stream starting past the held offset is refused', async (t) => {
  const store = await openStore(await tempDir(t));
  await assert.rejects(writeBlob(store, body('abc'), { ref: 'x', bodyOffset: 10 }), { code: 'EINVAL' });
});

test('store: abort discards an interrupted ingest', async (t) => {
  const store = await openStore(await tempDir(t));
  const opened = await openWriter(store, { ref: 'gone', total: 10 });
  assert.equal(opened.exists, false);
  if (opened.exists) return;
  await opened.writer.write([Buffer.from('12345')]);
  await opened.writer.close();
  assert.equal((await listIngests(store)).length, 1);
  await abortIngest(store, 'gone');
  assert.deepEqual(await leftovers(store.root), { blobs: [], ingest: [] });
  await assert.rejects(abortIngest(store, 'gone'), { code: 'ENOENT' });
});

test('store: a held lock is ELOCKED without wait', async (t) => {
  const store = await openStore(await tempDir(t));
  const a = await openWriter(store, { ref: 'busy' });
  t.after(() => (a.exists ? undefined : a.writer.abort()));
  await assert.rejects(openWriter(store, { ref: 'busy', wait: false }), { code: 'ELOCKED' });
});

test('store: a waiting writer finishes when the holder commits the expected blob', async (t) => {
  const store = await openStore(await tempDir(t));
  const a = await openWriter(store, { ref: 'same', expected: sha('zz') });
  assert.equal(a.exists, false);
  if (a.exists) return;
  const waiting = openWriter(store, { ref: 'same', expected: sha('zz') });
  await a.writer.write([Buffer.from('zz')]);
  await a.writer.commit();
  assert.deepEqual(await waiting, { exists: true, digest: sha('zz') });
  assert.deepEqual(await leftovers(store.root), { blobs: [sha('zz')], ingest: [] });
});

test('store: a resume with a different ref file or total restarts from zero', async (t) => {
  const store = await openStore(await tempDir(t));
  const dir = store.ingestDir('r');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'ref'), 'something else');
  await writeFile(join(dir, 'data'), 'garbage');
  const r = await writeBlob(store, body('fresh'), { ref: 'r', expected: sha('fresh') });
  assert.equal(r.written, 5);
});

test('store: ENOENT for unknown blobs, EINVAL before any file system access', async (t) => {
  const store = await openStore(await tempDir(t));
  await assert.rejects(blobInfo(store, sha('nope')), { code: 'ENOENT' });
  await assert.rejects(deleteBlob(store, sha('nope')), { code: 'ENOENT' });
  await assert.rejects(deleteBlob(store, 'sha256:../../etc/passwd'), { code: 'EINVAL' });
  assert.deepEqual(await listBlobs(store), []);
});

test('store: sha512 digests are stored under blobs/sha512', async (t) => {
  const store = await openStore(await tempDir(t));
  const d = `sha512:${createHash('sha512').update('five').digest('hex')}`;
  const r = await writeBlob(store, body('five'), { ref: 'x', expected: d });
  assert.equal(r.digest, d);
  assert.deepEqual((await leftovers(store.root)).blobs, [d]);
});

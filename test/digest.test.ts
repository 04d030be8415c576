import assert from 'node:assert/strict';
import { test } from 'node:test';
import { digestOf, parseDigest } from '../lib/digest.js';
import { Store } from '../lib/content/store.js';

const HEX = 'a'.repeat(64);

test('parseDigest accepts sha256 and sha512', () => {
  assert.deepEqual(parseDigest(`sha256:${HEX}`), { algorithm: 'sha256', hex: HEX, text: `sha256:${HEX}` });
  assert.equal(parseDigest(`sha512:${'0'.repeat(128)}`).algorithm, 'sha512');
});

for (const [name, bad] of [
  ['path traversal', 'sha256:../../etc/passwd'],
  ['traversal padded to length', `sha256:../../${'a'.repeat(58)}`],
  ['uppercase hex', `sha256:${'A'.repeat(64)}`],
  ['too short', `sha256:${'a'.repeat(63)}`],
  ['too long', `sha256:${'a'.repeat(65)}`],
  ['sha512 with sha256 length', `sha512:${HEX}`],
  ['unknown algorithm', `md5:${'a'.repeat(32)}`],
  ['no algorithm', HEX],
  ['empty', ''],
  ['slash in hex', `sha256:${'a'.repeat(31)}/${'a'.repeat(32)}`],
  ['NUL byte', `sha256:${'a'.repeat(63)}\0`],
] as const) {
  test(`parseDigest rejects ${name}`, () => {
    assert.throws(() => parseDigest(bad), (err: any) => err.code === 'EINVAL' && /invalid digest/.test(err.message));
  });
}

test('blobPath validates before building a path', () => {
  const store = new Store('/nonexistent-root');
  assert.throws(() => store.blobPath('sha256:../../etc/passwd'), { code: 'EINVAL' });
  assert.equal(store.blobPath(`sha256:${HEX}`), `/nonexistent-root/blobs/sha256/${HEX}`);
});

test('digestOf matches the known empty-tar DiffID', () => {
  assert.equal(digestOf(Buffer.alloc(1024)), 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef');
});

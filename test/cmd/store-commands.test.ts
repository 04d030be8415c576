import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { DIST_BIN, runCli, spawnCapture } from '../helpers/cli.js';
import { leftovers } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const sha = (b: string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function fresh(t: any): Promise<string> {
  return join(await tempDir(t), 'store');
}

test('ingest: prints the digest without --expected-digest, nothing with it', async (t) => {
  const root = await fresh(t);
  const a = await runCli(['ingest', 'ref-a'], { root, stdin: 'alpha' });
  assert.deepEqual([a.status, a.stdout, a.stderr], [0, `${sha('alpha')}\n`, '']);
  const b = await runCli(['ingest', '--expected-digest', sha('beta'), '--expected-size', '4', 'ref-b'], { root, stdin: 'beta' });
  assert.deepEqual([b.status, b.stdout, b.stderr], [0, '', '']);
});

test('ingest: an existing blob exits 0 without reading stdin', async (t) => {
  const root = await fresh(t);
  await runCli(['ingest', 'x'], { root, stdin: 'same' });
  const r = await runCli(['ingest', '--expected-digest', sha('same'), 'y'], { root, stdin: 'different!' });
  assert.equal(r.status, 0);
  assert.equal(r.stdinRead, false);
});

test('ingest: the ref defaults to the expected digest', async (t) => {
  const root = await fresh(t);
  const r = await runCli(['ingest', '--expected-digest', sha('q')], { root, stdin: 'q' });
  assert.equal(r.status, 0);
  assert.deepEqual((await leftovers(root)).blobs, [sha('q')]);
});

test('ingest: a digest mismatch is one line, exit 1, nothing committed', async (t) => {
  const root = await fresh(t);
  const r = await runCli(['ingest', '--expected-digest', sha('good'), '--expected-size', '4', 'r'], { root, stdin: 'bad!' });
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `dist ingest: ${sha('good')}: digest mismatch: expected ${sha('good')}, got ${sha('bad!')}\n`);
  assert.deepEqual(await leftovers(root), { blobs: [], ingest: [] });
});

test('ingest: a size mismatch is one line, exit 1, nothing committed', async (t) => {
  const root = await fresh(t);
  const r = await runCli(['ingest', '--expected-digest', sha('toolong'), '--expected-size', '3', 'r'], { root, stdin: 'toolong' });
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `dist ingest: ${sha('toolong')}: content is larger than the expected size 3\n`);
  assert.deepEqual(await leftovers(root), { blobs: [], ingest: [] });
});

test('ingest: a malformed digest is refused before touching the file system', async (t) => {
  const root = await fresh(t);
  const r = await runCli(['ingest', '--expected-digest', 'sha256:../../etc/passwd', 'r'], { root, stdin: 'x' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^dist ingest: invalid digest "sha256:..\/..\/etc\/passwd": sha256 needs 64 lowercase hex characters\n$/);
  assert.equal(r.stdinRead, false);
  assert.deepEqual(await leftovers(root), { blobs: [], ingest: [] });
});

test('usage errors exit 2 with one line and a pointer to --help; no stack trace', async (t) => {
  const root = await fresh(t);
  for (const argv of [['ingest', '--expected-size', 'abc', 'r'], ['frobnicate'], ['get'], ['list', '--bogus']]) {
    const r = await runCli(argv, { root });
    assert.equal(r.status, 2, argv.join(' '));
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[1]!, /^Run 'dist( \w+)? --help' for usage\.$/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});

test('DIST_DEBUG=1 adds the stack trace', async (t) => {
  const root = await fresh(t);
  const r = await runCli(['path', sha('missing')], { root, env: { DIST_DEBUG: '1' } });
  assert.equal(r.status, 1);
  const plain = await runCli(['get', sha('missing')], { root });
  assert.equal(plain.stderr, `dist get: ${sha('missing')}: not found in the store\n`);
  const debug = await runCli(['get', sha('missing')], { root, env: { DIST_DEBUG: '1' } });
  assert.match(debug.stderr, /\n\s+at /);
});

test('list: tab-separated table with a header, -q, --json, and the names that use each blob', async (t) => {
  const root = await fresh(t);
  await runCli(['ingest', 'a'], { root, stdin: 'one' });
  await runCli(['ingest', 'b'], { root, stdin: 'three' });
  const table = await runCli(['list'], { root });
  const lines = table.stdout.trimEnd().split('\n');
  assert.equal(lines[0], 'DIGEST\tSIZE\tAGE\tUSED BY');
  const digests = [sha('one'), sha('three')].sort();
  assert.deepEqual(lines.slice(1).map((l) => l.split('\t')[0]), digests);
  const row = lines.slice(1).find((l) => l.startsWith(sha('three')))!.split('\t');
  assert.equal(row[1], '5B');
  assert.match(row[2]!, /second/);
  assert.equal(row[3], '-');
  const q = await runCli(['ls', '-q'], { root });
  assert.equal(q.stdout, digests.map((d) => `${d}\n`).join(''));
  const json = (await runCli(['list', '--json'], { root })).stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(json.map((j) => [j.digest, j.size, j.usedBy]), digests.map((d) => [d, d === sha('one') ? 3 : 5, []]));
});

test('path: digest and absolute path; -q and -n print the path; digests from stdin', async (t) => {
  const root = await fresh(t);
  await runCli(['ingest', 'a'], { root, stdin: 'one' });
  const p = join(root, 'blobs', 'sha256', sha('one').slice(7));
  assert.equal((await runCli(['path', sha('one')], { root })).stdout, `${sha('one')} ${p}\n`);
  assert.equal((await runCli(['path', '-q', sha('one')], { root })).stdout, `${p}\n`);
  assert.equal((await runCli(['path', '-n', sha('one')], { root })).stdout, `${p}\n`);
  assert.equal((await runCli(['path', '-n'], { root, stdin: `${sha('one')}\n` })).stdout, `${p}\n`);
  const r = await runCli(['path', sha('zzz'), sha('one')], { root });
  assert.equal(r.status, 1);
  assert.equal(r.stdout, `${sha('one')} ${p}\n`);
  assert.equal(r.stderr, `dist path: ${sha('zzz')}: not found in the store\n`);
});

test('delete: prints each deleted digest, carries on past unknown ones, exits 1', async (t) => {
  const root = await fresh(t);
  await runCli(['ingest', 'a'], { root, stdin: 'one' });
  await runCli(['ingest', 'b'], { root, stdin: 'two' });
  const r = await runCli(['rm', sha('nope'), sha('one'), 'sha256:bad', sha('two')], { root });
  assert.equal(r.status, 1);
  assert.equal(r.stdout, `${sha('one')}\n${sha('two')}\n`);
  assert.equal(r.stderr.trimEnd().split('\n').length, 2);
  assert.deepEqual((await leftovers(root)).blobs, []);
});

test('delete: reads digests from stdin (dist list -q | dist delete)', async (t) => {
  const root = await fresh(t);
  await runCli(['ingest', 'a'], { root, stdin: 'one' });
  await runCli(['ingest', 'b'], { root, stdin: 'two' });
  const list = await runCli(['list', '-q'], { root });
  const r = await runCli(['delete'], { root, stdin: list.stdout });
  assert.equal(r.status, 0);
  assert.equal(r.stdout, list.stdout);
  assert.equal((await runCli(['list', '-q'], { root })).stdout, '');
});

test('get: writes the blob to stdout', async (t) => {
  const root = await fresh(t);
  await runCli(['ingest', 'a'], { root, stdin: 'payload' });
  const r = await runCli(['get', sha('payload')], { root });
  assert.deepEqual([r.status, r.stdout], [0, 'payload']);
});

test('active: shows an interrupted ingest with REF, SIZE, TOTAL, STARTED, UPDATED', async (t) => {
  const root = await fresh(t);
  const r = await runCli(['ingest', '--expected-digest', sha('0123456789'), '--expected-size', '10', 'layer-1'], { root, stdin: '01234' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /stream ended at 5 of 10 bytes; the ingest is kept for resume/);
  const table = (await runCli(['active'], { root })).stdout.trimEnd().split('\n');
  assert.equal(table[0], 'REF\tSIZE\tTOTAL\tSTARTED\tUPDATED');
  const [ref, size, total, started, updated] = table[1]!.split('\t');
  assert.deepEqual([ref, size, total], ['layer-1', '5B', '10B']);
  assert.match(started!, /ago$/);
  assert.match(updated!, /ago$/);
  const json = JSON.parse((await runCli(['active', '--json'], { root })).stdout);
  assert.equal(json.ref, 'layer-1');
  assert.equal(json.size, 5);
  assert.equal(json.total, 10);
  assert.equal((await runCli(['active', '-q'], { root })).stdout, 'layer-1\n');
  // The rest of the stream completes it.
  const done = await runCli(['ingest', '--expected-digest', sha('0123456789'), '--expected-size', '10', '--offset', '5', 'layer-1'], { root, stdin: '56789' });
  assert.equal(done.status, 0, done.stderr);
  assert.deepEqual(await leftovers(root), { blobs: [sha('0123456789')], ingest: [] });
});

test('help shows the seed pipelines; completion prints a script', async () => {
  const top = await runCli(['--help']);
  assert.equal(top.status, 0);
  assert.match(top.stdout, /xargs -I\{\} -P10 -n1 sh -c "\{\}"/);
  assert.match(top.stdout, /dist list -q \| xargs dist delete/);
  const ingest = await runCli(['ingest', '--help']);
  assert.match(ingest.stdout, /dist ingest --expected-digest "\+\.digest/);
  const path = await runCli(['path', '--help']);
  assert.match(path.stdout, /dist apply \.\/wordpress < \$\(dist path -n /);
  const completion = await runCli(['completion']);
  assert.equal(completion.status, 0);
  assert.match(completion.stdout, /complete -o bashdefault -o default -F/);
});

test('the store root comes from --root, then DIST_ROOT, then ./.content', async (t) => {
  const a = await fresh(t);
  const b = await fresh(t);
  await runCli(['ingest', '--root', a, 'x'], { root: b, stdin: 'via-flag' });
  assert.deepEqual((await leftovers(a)).blobs, [sha('via-flag')]);
  assert.deepEqual((await leftovers(b)).blobs, []);
  const index = JSON.parse(await readFile(join(a, 'index.json'), 'utf8'));
  assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
});

test('a root that cannot be made is one line and exit 1, at once: under /proc (mkdir answers ENOENT) and below a file', async (t) => {
  const file = join(await tempDir(t), 'file');
  await writeFile(file, 'x');
  for (const [root, error] of [
    ['/proc/dist-no-such/store', "ENOENT: no such file or directory, mkdir '/proc/dist-no-such'"],
    [join(file, 'store'), `ENOTDIR: not a directory, stat '${join(file, 'store', 'index.json')}'`],
  ]) {
    // Node's recursive mkdir never returned under /proc; the timeout turns a hang into a failure.
    const ingest = await spawnCapture(DIST_BIN, ['--root', root!, 'ingest', 'x'], { input: 'data', timeout: 20_000, killSignal: 'SIGKILL' });
    assert.deepEqual([ingest.status, ingest.stderr], [1, `dist ingest: ${error}\n`]);
    const pull = await spawnCapture(DIST_BIN, ['--root', root!, 'pull', '127.0.0.1:1/none:1'], { timeout: 20_000, killSignal: 'SIGKILL' });
    assert.deepEqual([pull.status, pull.stderr], [1, `dist pull: ${error}\n`]);
  }
});

import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { buildImage } from '../helpers/image.js';
import { fixtureDir, pushFromLayout, startRegistry, type Registry } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';

/** A store holding an image pulled from a plain registry. */
async function storeWithImage(t: any): Promise<{ root: string; name: string; manifest: string }> {
  const plain = await startRegistry(t);
  const src = await fixtureDir(t, 'src');
  const img = await buildImage(src, '1', [{ 'etc/os-release': 'ID=login-test\n' }]);
  await pushFromLayout(plain, src, 'team/app', '1', img.manifest, img.mediaType);
  const root = join(await tempDir(t), 'store');
  const name = `${plain.host}/team/app:1`;
  assert.equal((await runCli(['pull', name], { root })).status, 0);
  return { root, name, manifest: img.manifest };
}

const login = (reg: Registry, password: string, env: NodeJS.ProcessEnv) => runCli(['login', reg.host, '-u', reg.user!, '--password-stdin'], { stdin: `${password}\n`, env });

for (const auth of ['htpasswd', 'token'] as const) {
  test(`login (${auth}): a wrong password writes nothing; the right one is kept 0600 beside the other keys; push then works; logout forgets`, async (t) => {
    const reg = await startRegistry(t, { auth });
    const dir = await tempDir(t);
    const env = { DOCKER_CONFIG: dir };
    const other = { auths: { 'other.example': { auth: Buffer.from('a:b').toString('base64') } }, psFormat: 'table {{.ID}}' };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(other));
    const before = readFileSync(join(dir, 'config.json'), 'utf8');

    const bad = await login(reg, 'wrong password', env);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^dist login: .*authentication failed.*\n$/);
    assert.equal(bad.stderr.includes('wrong password'), false, 'the password never shows');
    assert.equal(readFileSync(join(dir, 'config.json'), 'utf8'), before, 'nothing written');

    const good = await login(reg, reg.password!, env);
    assert.equal(good.status, 0, good.stderr);
    assert.equal(good.stdout, 'Login Succeeded\n');
    assert.equal(statSync(join(dir, 'config.json')).mode & 0o777, 0o600);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.equal(config.psFormat, other.psFormat);
    assert.deepEqual(config.auths['other.example'], other.auths['other.example']);
    assert.equal(Buffer.from(config.auths[reg.host].auth, 'base64').toString(), `${reg.user}:${reg.password}`);

    const { root, name, manifest } = await storeWithImage(t);
    const pushed = await runCli(['push', name, `${reg.host}/team/app:1`], { root, env });
    assert.equal(pushed.status, 0, pushed.stderr);
    assert.equal(pushed.stdout, `${manifest}\n`);
    if (auth === 'token') assert.ok(reg.tokens!.scopes.includes('repository:team/app:pull,push'), reg.tokens!.scopes.join(' '));
    // Another repository of the same registry: the blobs are mounted from team/app, under token
    // auth with a token asked for pull on the source too.
    const second = await runCli(['push', '--json', name, `${reg.host}/team/other:1`], { root, env });
    assert.equal(second.status, 0, second.stderr);
    const how = second.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === 'blob' && e.status !== 'start').map((e) => e.status);
    assert.deepEqual(how, ['mounted', 'mounted']);
    if (auth === 'token') assert.ok(reg.tokens!.scopes.includes('repository:team/app:pull'), reg.tokens!.scopes.join(' '));

    const out = await runCli(['logout', reg.host], { env });
    assert.equal(out.stdout, `Removing login credentials for ${reg.host}\n`);
    const after = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(after, other);
    assert.equal((await runCli(['logout', reg.host], { env })).stdout, `Not logged in to ${reg.host}\n`);
  });
}

test('login through the configured credsStore helper: the secret goes to the helper, config.json keeps an empty entry; push reads it back', async (t) => {
  const reg = await startRegistry(t, { auth: 'htpasswd' });
  const dir = await tempDir(t);
  const bin = await tempDir(t);
  const vault = join(dir, 'vault.json');
  // A credential helper as docker-credential-* helpers behave: store/get/erase over stdin.
  writeFileSync(
    join(bin, 'docker-credential-dist-test'),
    `#!/bin/sh\ncase "$1" in\n  store) cat > ${vault} ;;\n  get) read host; [ -f ${vault} ] && cat ${vault} || { echo "credentials not found in native keychain"; exit 1; } ;;\n  erase) read host; [ -f ${vault} ] || { echo "credentials not found in native keychain"; exit 1; }; rm ${vault} ;;\nesac\n`,
  );
  chmodSync(join(bin, 'docker-credential-dist-test'), 0o755);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ credsStore: 'dist-test' }));
  const env = { DOCKER_CONFIG: dir, PATH: `${bin}:${process.env.PATH}` };
  const good = await login(reg, reg.password!, env);
  assert.equal(good.status, 0, good.stderr);
  assert.deepEqual(JSON.parse(readFileSync(vault, 'utf8')), { ServerURL: reg.host, Username: reg.user, Secret: reg.password });
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), { credsStore: 'dist-test', auths: { [reg.host]: {} } });
  const { root, name } = await storeWithImage(t);
  const pushed = await runCli(['push', name, `${reg.host}/team/app:1`], { root, env });
  assert.equal(pushed.status, 0, pushed.stderr);
  assert.equal((await runCli(['logout', reg.host], { env })).status, 0);
  assert.equal(existsSync(vault), false);
});

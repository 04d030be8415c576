// containerd's pkg/archive TestBreakouts, re-created from reference/apply-semantics.md §3.1:
// one named test per case. Every apply runs beside a canary; applyTar asserts nothing
// outside the root changed.
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, linkSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyTar, ok, sameFile, statInRoot } from '../helpers/applyharness.js';
import type { TarEntry } from '../helpers/tarfixture.js';

const D = (name: string, mode = 0o755): TarEntry => ({ name, type: 'dir', mode });
const F = (name: string, data = '', mode = 0o644): TarEntry => ({ name, type: 'file', data, mode });
const S = (name: string, target: string): TarEntry => ({ name, type: 'symlink', linkname: target });
const H = (name: string, target: string): TarEntry => ({ name, type: 'link', linkname: target });

const unbroken = (root: string) => assert.equal(readFileSync(join(root, 'etc', 'unbroken'), 'utf8'), 'unbroken');
const preEtc = (root: string) => {
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc', 'passwd'), 'all users');
};

test('breakout SymlinkAbsolute', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), S('localetc', '/etc'), F('/localetc/unbroken', 'unbroken')]));
  unbroken(a.root);
});

test('breakout SymlinkUpAndOut', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), D('dummy'), S('localetc', '/dummy/../etc'), F('/localetc/unbroken', 'unbroken')]));
  unbroken(a.root);
});

test('breakout SymlinkMultipleAbsolute', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), D('dummy'), S('/dummy/etc', '/etc'), S('localetc', '/dummy/etc'), F('/dummy/etc/unbroken', 'unbroken')]));
  unbroken(a.root);
});

test('breakout SymlinkMultipleRelative', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), D('dummy'), S('/dummy/etc', '/etc'), S('localetc', './dummy/etc'), F('/dummy/etc/unbroken', 'unbroken')]));
  unbroken(a.root);
});

test('breakout SymlinkEmptyFile', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), F('etc/emptied', 'notempty'), S('localetc', '/etc'), F('/localetc/emptied', '')]));
  assert.equal(readFileSync(join(a.root, 'etc', 'emptied'), 'utf8'), '');
});

test('breakout HardlinkRelative', async (t) => {
  const a = ok(await applyTar(t, [D('etc', 0o770), F('/etc/passwd', 'inside'), D('breakouts'), S('breakouts/d1', '../../etc'), H('breakouts/mypasswd', '/breakouts/d1/passwd')]));
  assert.ok(sameFile(a.root, 'breakouts/mypasswd', '/etc/passwd'));
});

test('breakout HardlinkDownAndOut', async (t) => {
  const a = ok(await applyTar(t, [D('etc', 0o770), F('/etc/passwd', 'inside'), D('breakouts'), D('downandout'), S('breakouts/d1', '../downandout/../../etc'), H('breakouts/mypasswd', '/breakouts/d1/passwd')]));
  assert.ok(sameFile(a.root, 'breakouts/mypasswd', '/etc/passwd'));
});

test('breakout HardlinkAbsolute', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), F('/etc/passwd', 'inside'), S('localetc', '/etc'), H('localpasswd', '/localetc/passwd')]));
  assert.ok(sameFile(a.root, 'localpasswd', '/etc/passwd'));
});

test('breakout HardlinkRelativeLong', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), F('/etc/passwd', 'inside'), S('localetc', '../../../../../../../etc'), H('localpasswd', '/localetc/passwd')]));
  assert.ok(sameFile(a.root, 'localpasswd', '/etc/passwd'));
});

test('breakout HardlinkRelativeUpAndOut', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), F('/etc/passwd', 'inside'), S('localetc', 'upandout/../../../etc'), H('localpasswd', '/localetc/passwd')]));
  assert.ok(sameFile(a.root, 'localpasswd', '/etc/passwd'));
});

test('breakout HardlinkDirectRelative', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), F('/etc/passwd', 'inside'), H('localpasswd', '../../../../../etc/passwd')]));
  assert.ok(sameFile(a.root, 'localpasswd', '/etc/passwd'));
});

test('breakout HardlinkDirectAbsolute', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), F('/etc/passwd', 'inside'), H('localpasswd', '/etc/passwd')]));
  assert.ok(sameFile(a.root, 'localpasswd', '/etc/passwd'));
});

test('breakout SymlinkParentDirectory', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), F('/etc/passwd', 'inside'), S('..', '/etc/'), H('localpasswd', '/etc/passwd')]));
  assert.ok(sameFile(a.root, 'localpasswd', '/etc/passwd'));
  assert.ok(lstatSync(a.root).isDirectory(), 'the root is still a directory');
});

test('breakout SymlinkEmptyFilename', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), F('/etc/passwd', 'inside'), S('', '/etc/'), H('localpasswd', '/etc/passwd')]));
  assert.ok(sameFile(a.root, 'localpasswd', '/etc/passwd'));
});

test('breakout SymlinkParentRelative', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), F('/etc/passwd', 'inside'), S('localetc/sub/..', '/etc/'), H('/localetc/localpasswd', '/etc/passwd')]));
  assert.ok(lstatSync(join(a.root, 'localetc')).isSymbolicLink());
  assert.ok(existsSync(join(a.root, 'etc', 'localpasswd')));
  assert.ok(sameFile(a.root, 'localetc/localpasswd', '/etc/passwd'));
});

test('breakout SymlinkSlashEnded', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), F('/etc/passwd', 'inside'), D('localetc/'), H('/localetc/localpasswd', '/etc/passwd')]));
  assert.ok(sameFile(a.root, 'localetc/localpasswd', '/etc/passwd'));
});

test('breakout SymlinkOverrideDirectory', async (t) => {
  const a = ok(await applyTar(t, [S('localetc', '/etc'), H('/localetc/localpasswd', '/etc/passwd')], (root) => {
    preEtc(root);
    mkdirSync(join(root, 'localetc'));
  }));
  assert.ok(lstatSync(join(a.root, 'localetc')).isSymbolicLink());
  assert.ok(sameFile(a.root, 'localetc/localpasswd', '/etc/passwd'));
});

test('breakout SymlinkOverrideDirectoryRelative', async (t) => {
  const a = ok(await applyTar(t, [S('localetc', '../../etc'), H('/localetc/localpasswd', '/etc/passwd')], (root) => {
    preEtc(root);
    mkdirSync(join(root, 'localetc'));
  }));
  assert.ok(sameFile(a.root, 'localetc/localpasswd', '/etc/passwd'));
});

test('breakout DirectoryOverrideSymlink', async (t) => {
  const a = ok(await applyTar(t, [D('/localetc/', 0o755), H('/localetc/localpasswd', '/etc/passwd')], (root) => {
    preEtc(root);
    symlinkSync('/etc', join(root, 'localetc'));
  }));
  assert.ok(lstatSync(join(a.root, 'localetc')).isDirectory());
  assert.ok(sameFile(a.root, 'localetc/localpasswd', '/etc/passwd'));
});

test('breakout DirectoryOverrideSymlinkAndHardlink', async (t) => {
  const a = ok(await applyTar(t, [D('/localetc/'), F('/localetc/localpasswd', 'different')], (root) => {
    preEtc(root);
    symlinkSync('etc', join(root, 'localetc'));
    linkSync(join(root, 'etc', 'passwd'), join(root, 'etc', 'localpasswd'));
  }));
  assert.ok(!sameFile(a.root, 'localetc/localpasswd', '/etc/passwd'));
  assert.equal(readFileSync(join(a.root, 'etc', 'passwd'), 'utf8'), 'all users');
  assert.equal(readFileSync(join(a.root, 'localetc', 'localpasswd'), 'utf8'), 'different');
});

for (const [name, entry] of [
  ['WhiteoutRootParent', '.wh...'],
  ['WhiteoutParent', 'etc/.wh...'],
  ['WhiteoutRoot', '.wh..'],
  ['WhiteoutCurrentDirectory', 'etc/.wh..'],
] as const) {
  test(`breakout ${name}`, async (t) => {
    const a = await applyTar(t, [F(entry, '')], preEtc);
    assert.equal(a.error?.code, 'EUNSAFE');
    assert.match(a.error.message, /invalid whiteout name/);
    assert.equal(readFileSync(join(a.root, 'etc', 'passwd'), 'utf8'), 'all users');
  });
}

test('breakout WhiteoutSymlink', async (t) => {
  const a = ok(await applyTar(t, [F('.wh.localetc', '')], (root) => {
    preEtc(root);
    symlinkSync('/etc', join(root, 'localetc'));
  }));
  assert.ok(!existsSync(join(a.root, 'localetc')));
  assert.equal(readFileSync(join(a.root, 'etc', 'passwd'), 'utf8'), 'all users');
});

const preWhiteout = (root: string) => {
  preEtc(root);
  writeFileSync(join(root, 'etc', 'whitedout'), 'x');
  symlinkSync('/etc', join(root, 'localetc'));
};

test('breakout WhiteoutSymlinkPath', async (t) => {
  const a = ok(await applyTar(t, [F('localetc/.wh.whitedout', '')], preWhiteout));
  assert.ok(!existsSync(join(a.root, 'etc', 'whitedout')));
  assert.equal(readFileSync(join(a.root, 'etc', 'passwd'), 'utf8'), 'all users');
});

test('breakout WhiteoutDirectoryName', async (t) => {
  const a = ok(await applyTar(t, [F('.wh.etc/somefile', 'non-empty')], preWhiteout));
  assert.equal(readFileSync(join(a.root, '.wh.etc', 'somefile'), 'utf8'), 'non-empty');
  assert.equal(readFileSync(join(a.root, 'etc', 'passwd'), 'utf8'), 'all users');
});

const preDead = (root: string) => {
  preEtc(root);
  symlinkSync('/dne', join(root, 'localetc'));
};

test('breakout WhiteoutDeadSymlinkParent', async (t) => {
  const a = ok(await applyTar(t, [F('localetc/.wh.etc', '')], preDead));
  assert.equal(readFileSync(join(a.root, 'etc', 'passwd'), 'utf8'), 'all users');
});

test('breakout WhiteoutRelativePath', async (t) => {
  const a = ok(await applyTar(t, [F('dne/../.wh.etc', '')], preDead));
  assert.ok(!existsSync(join(a.root, 'etc')));
});

test('breakout SymlinkOverridePath', async (t) => {
  const unique = `breakout-${process.pid}-${Date.now()}`;
  const a = ok(await applyTar(t, [
    D('foo'), D('foo/tmp'), F(`foo/tmp/${unique}`, '\x00\x01\x02'),
    S('foo', '/'),
    F(`foo/tmp/${unique}`, '\x03\x04\x05'),
    D('foo'), D('foo/tmp'), F(`foo/tmp/${unique}`, '\x06\x07\x08'),
  ]));
  assert.ok(!existsSync(`/tmp/${unique}`), 'nothing reached the host /tmp');
  assert.equal(readFileSync(join(a.root, 'tmp', unique), 'latin1'), '\x03\x04\x05');
  assert.equal(readFileSync(join(a.root, 'foo', 'tmp', unique), 'latin1'), '\x06\x07\x08');
});

test('breakout HardlinkSymlinkBeforeCreateTarget', async (t) => {
  const a = ok(await applyTar(t, [D('etc'), S('localpasswd', '/etc/passwd'), H('localpasswd-dup', 'localpasswd'), F('/etc/passwd', 'after')]));
  assert.ok(lstatSync(join(a.root, 'localpasswd-dup')).isSymbolicLink());
  assert.equal(lstatSync(join(a.root, 'localpasswd-dup')).ino, lstatSync(join(a.root, 'localpasswd')).ino);
  assert.ok(sameFile(a.root, 'localpasswd-dup', '/etc/passwd'));
});

for (const [name, target] of [['HardlinkSymlinkRelative', '../../../../../etc/passwd'], ['HardlinkSymlinkAbsolute', '/etc/passwd']] as const) {
  test(`breakout ${name}`, async (t) => {
    const a = ok(await applyTar(t, [D('etc'), F('/etc/passwd', 'inside'), S('passwdlink', target), H('localpasswd', '/passwdlink')]));
    assert.ok(lstatSync(join(a.root, 'localpasswd')).isSymbolicLink());
    assert.equal(readlinkSync(join(a.root, 'localpasswd')), target);
    assert.ok(sameFile(a.root, 'localpasswd', '/etc/passwd'));
    assert.equal(statInRoot(a.root, 'localpasswd').size, 'inside'.length);
  });
}

test('breakout HardlinkSymlinkChmod (CVE-2021-32760)', async (t) => {
  let perm400 = '';
  const a = ok(
    await applyTar(
      t,
      (tmp) => {
        perm400 = join(tmp, 'canary', 'perm400');
        const alsoExists = join(tmp, 'canary', 'also-exists-outside-root');
        return [S(alsoExists, perm400), { ...H('sketchylink', alsoExists), mode: 0o777 }];
      },
      (_root, tmp) => {
        writeFileSync(join(tmp, 'canary', 'perm400'), 'x');
        chmodSync(join(tmp, 'canary', 'perm400'), 0o400);
        writeFileSync(join(tmp, 'canary', 'also-exists-outside-root'), 'y');
        chmodSync(join(tmp, 'canary', 'also-exists-outside-root'), 0o640);
      },
    ),
  );
  assert.equal(statSync(perm400).mode & 0o7777, 0o400, 'the host file kept its mode');
  const inRoot = join(a.root, a.tmp, 'canary', 'also-exists-outside-root');
  assert.ok(lstatSync(inRoot).isSymbolicLink(), 'the symlink was created inside the root');
  assert.equal(lstatSync(join(a.root, 'sketchylink')).ino, lstatSync(inRoot).ino, 'the hardlink links the symlink itself');
});

// Within one layer, a directory the applier made or walked is replaced by a symlink, and a
// later entry goes through that name: it must follow the new symlink inside the root, never a
// remembered directory (lib/archive/apply.ts keeps known directories to skip lstat calls).
for (const [name, first] of [
  ['a directory entry', [D('a'), F('a/x', 'one')]],
  ['parents it made', [F('a/x', 'one')]],
] as const) {
  test(`apply: within a layer, ${name} replaced by a symlink is followed inside the root`, async (t) => {
    // A name the canary does not have: through a remembered directory it would be created there.
    const a = ok(await applyTar(t, (tmp) => [...first, S('a', join(tmp, 'canary', 'etc')), F('a/added', 'pwned')]));
    assert.ok(lstatSync(join(a.root, 'a')).isSymbolicLink());
    assert.equal(readFileSync(join(a.root, a.tmp, 'canary', 'etc', 'added'), 'utf8'), 'pwned', 'written inside the root');
  });
}

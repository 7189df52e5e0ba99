import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Errno, Oflags } from '../../src/wasi/constants.js';
import { Guest, tempDir } from './helpers.js';

/**
 * Layout: outside/secret next to root/, and root/ holds the preopen's contents:
 * sub/inner, links out of the sandbox and links that stay inside.
 */
function setup(): { g: Guest; root: string; outside: string } {
  const base = tempDir();
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  mkdirSync(join(root, 'sub'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret'), 'secret');
  writeFileSync(join(root, 'sub', 'inner'), 'inner');
  symlinkSync('../outside', join(root, 'out-rel'));
  symlinkSync(outside, join(root, 'out-abs'));
  symlinkSync('../outside/secret', join(root, 'secret-link'));
  symlinkSync('../../outside/secret', join(root, 'sub', 'deep-link'));
  symlinkSync('sub/inner', join(root, 'in-link'));
  symlinkSync('../in-link', join(root, 'sub', 'chain'));
  symlinkSync('sub', join(root, 'sub-link'));
  symlinkSync('loop-b', join(root, 'loop-a'));
  symlinkSync('loop-a', join(root, 'loop-b'));
  symlinkSync('self', join(root, 'self'));
  return { g: Guest.create({ preopens: [{ guestPath: '/data', hostPath: root }] }), root, outside };
}

test('".." above the preopen and absolute paths are NOTCAPABLE', () => {
  const { g } = setup();
  assert.equal(g.open(3, '../outside/secret').errno, Errno.NOTCAPABLE);
  assert.equal(g.open(3, 'sub/../../outside/secret').errno, Errno.NOTCAPABLE);
  assert.equal(g.open(3, '/etc/passwd').errno, Errno.NOTCAPABLE);
  assert.equal(g.open(3, '..').errno, Errno.NOTCAPABLE);
  assert.equal(g.pathCall('path_create_directory', 3, '../newdir'), Errno.NOTCAPABLE);
  assert.equal(g.pathFilestat(3, '..').errno, Errno.NOTCAPABLE);
  // '..' that stays inside is fine.
  assert.deepEqual(g.read(g.openOk(3, 'sub/../sub/./inner'), 10), { errno: 0, data: 'inner' });
});

test('".." from a subdirectory fd may climb to the preopen root but not above', () => {
  const { g } = setup();
  const sub = g.openDir(3, 'sub');
  assert.deepEqual(g.read(g.openOk(sub, '../sub/inner'), 10), { errno: 0, data: 'inner' });
  assert.equal(g.open(sub, '../..').errno, Errno.NOTCAPABLE);
  assert.equal(g.open(sub, '../../outside/secret').errno, Errno.NOTCAPABLE);
});

test('symlinks leaving the sandbox are NOTCAPABLE as final or intermediate components', () => {
  const { g } = setup();
  // Final component, followed.
  assert.equal(g.open(3, 'secret-link').errno, Errno.NOTCAPABLE);
  assert.equal(g.open(3, 'sub/deep-link').errno, Errno.NOTCAPABLE);
  assert.equal(g.open(3, 'out-abs', { oflags: Oflags.DIRECTORY }).errno, Errno.NOTCAPABLE);
  assert.equal(g.pathFilestat(3, 'secret-link', true).errno, Errno.NOTCAPABLE);
  // Intermediate components.
  assert.equal(g.open(3, 'out-rel/secret').errno, Errno.NOTCAPABLE);
  assert.equal(g.open(3, 'out-abs/secret').errno, Errno.NOTCAPABLE);
  assert.equal(g.pathFilestat(3, 'out-rel/secret', false).errno, Errno.NOTCAPABLE);
  assert.equal(g.pathCall('path_unlink_file', 3, 'out-rel/secret'), Errno.NOTCAPABLE);
  assert.equal(g.pathCall('path_create_directory', 3, 'out-rel/x'), Errno.NOTCAPABLE);
  // A trailing slash forces following, even for lookups that would not follow.
  assert.equal(g.pathFilestat(3, 'out-rel/', false).errno, Errno.NOTCAPABLE);
  // Creating through an escaping link must not create anything outside.
  assert.equal(g.open(3, 'out-rel/new', { oflags: Oflags.CREAT }).errno, Errno.NOTCAPABLE);
});

test('not following the final component reaches the link itself, which is allowed', () => {
  const { g, outside } = setup();
  assert.equal(g.pathFilestat(3, 'secret-link', false).errno, Errno.SUCCESS);
  assert.equal(g.open(3, 'secret-link', { follow: false }).errno, Errno.LOOP);
  // Removing the link does not touch its target.
  assert.equal(g.pathCall('path_unlink_file', 3, 'secret-link'), Errno.SUCCESS);
  assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'secret');
});

test('symlinks that stay inside are followed, including chains and directory links', () => {
  const { g } = setup();
  assert.deepEqual(g.read(g.openOk(3, 'in-link'), 10), { errno: 0, data: 'inner' });
  assert.deepEqual(g.read(g.openOk(3, 'sub/chain'), 10), { errno: 0, data: 'inner' });
  assert.deepEqual(g.read(g.openOk(3, 'sub-link/inner'), 10), { errno: 0, data: 'inner' });
  // '..' after a directory symlink is physical: sub-link/.. is the root.
  assert.deepEqual(g.read(g.openOk(3, 'sub-link/../in-link'), 10), { errno: 0, data: 'inner' });
});

test('symlink loops give ELOOP', () => {
  const { g } = setup();
  assert.equal(g.open(3, 'loop-a').errno, Errno.LOOP);
  assert.equal(g.open(3, 'self').errno, Errno.LOOP);
  assert.equal(g.open(3, 'self/x').errno, Errno.LOOP);
  assert.equal(g.pathFilestat(3, 'loop-b', true).errno, Errno.LOOP);
  assert.equal(g.pathFilestat(3, 'loop-b', false).errno, Errno.SUCCESS);
});

test('rename and link cannot move anything out, nor in from outside', () => {
  const { g, outside } = setup();
  const [a, al] = g.put('sub/inner');
  const [b, bl] = g.put('out-rel/stolen');
  assert.equal(g.call('path_rename', 3, a, al, 3, b, bl), Errno.NOTCAPABLE);
  assert.equal(g.call('path_link', 3, 0, a, al, 3, b, bl), Errno.NOTCAPABLE);
  const [c, cl] = g.put('out-rel/secret');
  const [d, dl] = g.put('mine');
  assert.equal(g.call('path_rename', 3, c, cl, 3, d, dl), Errno.NOTCAPABLE);
  assert.equal(g.call('path_link', 3, 1, c, cl, 3, d, dl), Errno.NOTCAPABLE);
  const [s, sl] = g.put('secret-link');
  assert.equal(g.call('path_link', 3, 1, s, sl, 3, d, dl), Errno.NOTCAPABLE);
  assert.ok(existsSync(join(outside, 'secret')));
  assert.ok(!existsSync(join(outside, 'stolen')));
});

test('a symlink created by the guest to the outside cannot be followed', () => {
  const { g } = setup();
  const [t, tl] = g.put('../../..');
  const [p, pl] = g.put('sub/up');
  assert.equal(g.call('path_symlink', t, tl, 3, p, pl), Errno.SUCCESS);
  assert.equal(g.open(3, 'sub/up/etc/passwd').errno, Errno.NOTCAPABLE);
  assert.equal(g.pathCall('path_create_directory', 3, 'sub/up/x'), Errno.NOTCAPABLE);
});

test('NUL bytes in paths are EINVAL', () => {
  const { g } = setup();
  assert.equal(g.open(3, 'sub\0/inner').errno, Errno.INVAL);
});

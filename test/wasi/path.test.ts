import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Errno, Filetype, Fstflags, Rights } from '../../src/wasi/constants.js';
import { Guest, tempDir } from './helpers.js';

function setup(): { g: Guest; dir: string } {
  const dir = tempDir();
  return { g: Guest.create({ preopens: [{ guestPath: '/', hostPath: dir }] }), dir };
}

/** Call an import taking (fd, path) then (fd2, path2), as path_rename does. */
function twoPaths(g: Guest, name: string, fd: number, a: string, fd2: number, b: string): number {
  const [pa, la] = g.put(a);
  const [pb, lb] = g.put(b);
  return g.call(name, fd, pa, la, fd2, pb, lb);
}

function link(g: Guest, from: string, to: string, follow = false): number {
  const [pa, la] = g.put(from);
  const [pb, lb] = g.put(to);
  return g.call('path_link', 3, follow ? 1 : 0, pa, la, 3, pb, lb);
}

function symlink(g: Guest, target: string, at: string): number {
  const [pa, la] = g.put(target);
  const [pb, lb] = g.put(at);
  return g.call('path_symlink', pa, la, 3, pb, lb);
}

function readlink(g: Guest, path: string, size = 64): { errno: number; text: string } {
  const [p, l] = g.put(path);
  const buf = g.alloc(size);
  const out = g.alloc(4);
  const errno = g.call('path_readlink', 3, p, l, buf, size, out);
  return { errno, text: g.bytes(buf, errno === 0 ? g.u32(out) : 0).toString() };
}

test('path_create_directory and path_remove_directory', () => {
  const { g, dir } = setup();
  assert.equal(g.pathCall('path_create_directory', 3, 'a'), Errno.SUCCESS);
  assert.ok(statSync(join(dir, 'a')).isDirectory());
  assert.equal(g.pathCall('path_create_directory', 3, 'a'), Errno.EXIST);
  assert.equal(g.pathCall('path_create_directory', 3, 'a/b/c'), Errno.NOENT);
  assert.equal(g.pathCall('path_create_directory', 3, 'a/b/'), Errno.SUCCESS);
  assert.equal(g.pathCall('path_create_directory', 3, '.'), Errno.EXIST);
  assert.equal(g.pathCall('path_remove_directory', 3, 'a'), Errno.NOTEMPTY);
  assert.equal(g.pathCall('path_remove_directory', 3, 'a/b'), Errno.SUCCESS);
  assert.equal(g.pathCall('path_remove_directory', 3, 'a/b'), Errno.NOENT);
  writeFileSync(join(dir, 'file'), 'x');
  assert.equal(g.pathCall('path_remove_directory', 3, 'file'), Errno.NOTDIR);
  assert.equal(g.pathCall('path_remove_directory', 3, '.'), Errno.INVAL);
  assert.equal(g.pathCall('path_remove_directory', 3, 'a/..'), Errno.INVAL);
  assert.ok(existsSync(dir));
  assert.equal(g.pathCall('path_remove_directory', 3, 'a'), Errno.SUCCESS);
});

test('path_unlink_file', () => {
  const { g, dir } = setup();
  writeFileSync(join(dir, 'f'), 'x');
  mkdirSync(join(dir, 'd'));
  assert.equal(g.pathCall('path_unlink_file', 3, 'f/'), Errno.NOTDIR);
  assert.equal(g.pathCall('path_unlink_file', 3, 'f'), Errno.SUCCESS);
  assert.ok(!existsSync(join(dir, 'f')));
  assert.equal(g.pathCall('path_unlink_file', 3, 'f'), Errno.NOENT);
  assert.equal(g.pathCall('path_unlink_file', 3, 'd'), Errno.ISDIR);
  // Unlinking a symlink removes the link, not its target.
  writeFileSync(join(dir, 't'), 'target');
  symlinkSync('t', join(dir, 'l'));
  assert.equal(g.pathCall('path_unlink_file', 3, 'l'), Errno.SUCCESS);
  assert.equal(readFileSync(join(dir, 't'), 'utf8'), 'target');
});

test('path_filestat_get follows symlinks only when asked', () => {
  const { g, dir } = setup();
  writeFileSync(join(dir, 'f'), '12345');
  symlinkSync('f', join(dir, 'l'));
  const followed = g.pathFilestat(3, 'l', true);
  assert.equal(followed.errno, Errno.SUCCESS);
  assert.equal(followed.stat.filetype, Filetype.REGULAR_FILE);
  assert.equal(followed.stat.size, 5n);
  assert.equal(followed.stat.ino, statSync(join(dir, 'f'), { bigint: true }).ino);
  const link = g.pathFilestat(3, 'l', false);
  assert.equal(link.stat.filetype, Filetype.SYMBOLIC_LINK);
  assert.equal(link.stat.ino, lstatSync(join(dir, 'l'), { bigint: true }).ino);
  assert.equal(g.pathFilestat(3, 'missing').errno, Errno.NOENT);
  assert.equal(g.pathFilestat(3, '.').stat.filetype, Filetype.DIRECTORY);
  assert.equal(g.pathFilestat(3, '').errno, Errno.NOENT);
});

test('path_filestat_set_times on a path', () => {
  const { g, dir } = setup();
  writeFileSync(join(dir, 'f'), '');
  const [p, l] = g.put('f');
  const sec = 1_000_000_000n;
  assert.equal(
    g.call('path_filestat_set_times', 3, 1, p, l, 11n * sec, 22n * sec, Fstflags.ATIM | Fstflags.MTIM),
    Errno.SUCCESS,
  );
  const st = statSync(join(dir, 'f'), { bigint: true });
  assert.equal(st.atimeNs, 11n * sec);
  assert.equal(st.mtimeNs, 22n * sec);
  const [q, m] = g.put('nope');
  assert.equal(g.call('path_filestat_set_times', 3, 1, q, m, 0n, 0n, Fstflags.MTIM_NOW), Errno.NOENT);
});

test('path_rename moves files and directories', () => {
  const { g, dir } = setup();
  writeFileSync(join(dir, 'a'), 'A');
  mkdirSync(join(dir, 'sub'));
  assert.equal(twoPaths(g, 'path_rename', 3, 'a', 3, 'sub/b'), Errno.SUCCESS);
  assert.equal(readFileSync(join(dir, 'sub/b'), 'utf8'), 'A');
  assert.equal(twoPaths(g, 'path_rename', 3, 'a', 3, 'c'), Errno.NOENT);
  mkdirSync(join(dir, 'full'));
  writeFileSync(join(dir, 'full/x'), '');
  assert.equal(twoPaths(g, 'path_rename', 3, 'sub', 3, 'full'), Errno.NOTEMPTY);
  assert.equal(twoPaths(g, 'path_rename', 3, 'sub/b', 3, 'full'), Errno.ISDIR);
  assert.equal(twoPaths(g, 'path_rename', 3, 'sub', 3, '..'), Errno.NOTCAPABLE);
  // Through a directory fd other than the preopen.
  const sub = g.openDir(3, 'sub');
  assert.equal(twoPaths(g, 'path_rename', sub, 'b', 3, 'back'), Errno.SUCCESS);
  assert.equal(readFileSync(join(dir, 'back'), 'utf8'), 'A');
});

test('path_link creates hard links', () => {
  const { g, dir } = setup();
  writeFileSync(join(dir, 'f'), 'data');
  assert.equal(link(g, 'f', 'g'), Errno.SUCCESS);
  assert.equal(statSync(join(dir, 'f')).nlink, 2);
  assert.equal(link(g, 'f', 'g'), Errno.EXIST);
  assert.equal(link(g, 'missing', 'h'), Errno.NOENT);
  // Following: the link is to the target, not to the symlink.
  symlinkSync('f', join(dir, 'sl'));
  assert.equal(link(g, 'sl', 'via-follow', true), Errno.SUCCESS);
  assert.equal(lstatSync(join(dir, 'via-follow')).isFile(), true);
  assert.equal(link(g, 'sl', 'no-follow', false), Errno.SUCCESS);
  assert.equal(lstatSync(join(dir, 'no-follow')).isSymbolicLink(), true);
});

test('path_symlink and path_readlink', () => {
  const { g, dir } = setup();
  assert.equal(symlink(g, 'target/somewhere', 'l'), Errno.SUCCESS);
  assert.equal(readlinkSync(join(dir, 'l')), 'target/somewhere');
  assert.deepEqual(readlink(g, 'l'), { errno: 0, text: 'target/somewhere' });
  // A short buffer truncates, as readlink(2) does.
  assert.deepEqual(readlink(g, 'l', 6), { errno: 0, text: 'target' });
  assert.equal(symlink(g, 'x', 'l'), Errno.EXIST);
  // Any text may be stored, even an absolute or escaping one: following is what is checked.
  assert.equal(symlink(g, '/etc/passwd', 'abs'), Errno.SUCCESS);
  assert.deepEqual(readlink(g, 'abs'), { errno: 0, text: '/etc/passwd' });
  writeFileSync(join(dir, 'f'), '');
  assert.equal(readlink(g, 'f').errno, Errno.INVAL);
  assert.equal(readlink(g, 'nope').errno, Errno.NOENT);
  assert.equal(symlink(g, 'x', '../out'), Errno.NOTCAPABLE);
});

test('path operations need their rights', () => {
  const { g } = setup();
  const d = g.openOk(3, '.', { rights: Rights.PATH_OPEN, inheriting: 0n });
  assert.equal(g.pathCall('path_create_directory', d, 'x'), Errno.NOTCAPABLE);
  assert.equal(g.pathCall('path_unlink_file', d, 'x'), Errno.NOTCAPABLE);
  assert.equal(g.pathCall('path_remove_directory', d, 'x'), Errno.NOTCAPABLE);
  assert.equal(g.pathFilestat(d, 'x').errno, Errno.NOTCAPABLE);
  assert.equal(g.pathCall('path_create_directory', 99, 'x'), Errno.BADF);
});

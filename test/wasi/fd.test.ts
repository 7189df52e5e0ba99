import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Errno, Fdflags, Filetype, Fstflags, Oflags, Rights, Whence } from '../../src/wasi/constants.js';
import { Guest, READ_RIGHTS, tempDir } from './helpers.js';

function setup(): { g: Guest; dir: string } {
  const dir = tempDir();
  return { g: Guest.create({ preopens: [{ guestPath: '/sandbox', hostPath: dir }] }), dir };
}

test('write, seek, tell, read and pread/pwrite on a file', () => {
  const { g, dir } = setup();
  const fd = g.openOk(3, 'a.txt', { oflags: Oflags.CREAT });
  assert.equal(fd, 4);
  assert.deepEqual(g.write(fd, 'hello ', 'world'), { errno: 0, n: 11 });
  assert.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'hello world');
  assert.deepEqual(g.tell(fd), { errno: 0, pos: 11n });
  assert.deepEqual(g.seek(fd, 0n, Whence.SET), { errno: 0, pos: 0n });
  assert.deepEqual(g.read(fd, 3, 4), { errno: 0, data: 'hello w' });
  assert.deepEqual(g.seek(fd, -2n, Whence.CUR), { errno: 0, pos: 5n });
  assert.deepEqual(g.seek(fd, -5n, Whence.END), { errno: 0, pos: 6n });
  assert.deepEqual(g.read(fd, 100), { errno: 0, data: 'world' });
  assert.deepEqual(g.read(fd, 100), { errno: 0, data: '' });
  assert.equal(g.seek(fd, -1n, Whence.SET).errno, Errno.INVAL);
  assert.equal(g.seek(fd, 0n, 7).errno, Errno.INVAL);
  // pread/pwrite leave the offset alone.
  assert.deepEqual(g.pread(fd, 4, 6n), { errno: 0, data: 'worl' });
  assert.deepEqual(g.pwrite(fd, 'J', 0n), { errno: 0, n: 1 });
  assert.deepEqual(g.tell(fd), { errno: 0, pos: 11n });
  assert.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'Jello world');
  assert.equal(g.call('fd_close', fd), Errno.SUCCESS);
  assert.equal(g.call('fd_close', fd), Errno.BADF);
  assert.equal(g.read(fd, 1).errno, Errno.BADF);
});

test('O_APPEND writes at the end; fd_fdstat_set_flags toggles it', () => {
  const { g, dir } = setup();
  writeFileSync(join(dir, 'log'), 'abc');
  const fd = g.openOk(3, 'log', { fdflags: Fdflags.APPEND });
  assert.equal(g.fdstat(fd).flags, Fdflags.APPEND);
  g.write(fd, 'de');
  assert.equal(readFileSync(join(dir, 'log'), 'utf8'), 'abcde');
  assert.equal(g.call('fd_fdstat_set_flags', fd, 0), Errno.SUCCESS);
  g.seek(fd, 0n, Whence.SET);
  g.write(fd, 'X');
  assert.equal(readFileSync(join(dir, 'log'), 'utf8'), 'Xbcde');
  assert.equal(g.call('fd_fdstat_set_flags', fd, 0x100), Errno.INVAL);
  assert.equal(g.call('fd_fdstat_set_flags', fd, Fdflags.SYNC), Errno.SUCCESS);
  g.write(fd, 'Y');
  assert.equal(readFileSync(join(dir, 'log'), 'utf8'), 'XYcde');
});

test('path_open oflags: creat, excl, trunc, directory', () => {
  const { g, dir } = setup();
  assert.equal(g.open(3, 'nope').errno, Errno.NOENT);
  g.create(3, 'f', 'content');
  assert.equal(g.open(3, 'f', { oflags: Oflags.CREAT | Oflags.EXCL }).errno, Errno.EXIST);
  const fd = g.openOk(3, 'f', { oflags: Oflags.TRUNC });
  assert.equal(statSync(join(dir, 'f')).size, 0);
  g.call('fd_close', fd);
  assert.equal(g.open(3, 'f', { oflags: Oflags.DIRECTORY }).errno, Errno.NOTDIR);
  assert.equal(g.open(3, 'missing', { oflags: Oflags.DIRECTORY }).errno, Errno.NOENT);
  assert.equal(g.open(3, 'f/', {}).errno, Errno.NOTDIR);
  assert.equal(g.open(3, 'f/x', {}).errno, Errno.NOTDIR);
  assert.equal(g.open(3, 'missing/x', { oflags: Oflags.CREAT }).errno, Errno.NOENT);
  assert.equal(g.pathCall('path_create_directory', 3, 'd'), Errno.SUCCESS);
  const d = g.open(3, 'd', { oflags: Oflags.DIRECTORY, rights: READ_RIGHTS | Rights.PATH_OPEN });
  assert.equal(d.errno, Errno.SUCCESS);
  assert.equal(g.fdstat(d.fd).filetype, Filetype.DIRECTORY);
  assert.equal(g.open(3, 'd', { oflags: Oflags.CREAT | Oflags.EXCL }).errno, Errno.EXIST);
  assert.equal(g.open(3, 'd', { oflags: Oflags.TRUNC }).errno, Errno.ISDIR);
  // Asking to write a directory is refused as on POSIX.
  assert.equal(g.open(3, 'd', { rights: Rights.FD_WRITE }).errno, Errno.ISDIR);
  assert.equal(g.open(99, 'f').errno, Errno.BADF);
  assert.equal(g.open(g.openOk(3, 'f'), 'x').errno, Errno.NOTDIR);
});

test('path_open on an fd that is not a directory is ENOTDIR; fds are reused lowest first', () => {
  const { g } = setup();
  g.create(3, 'f', '');
  const a = g.openOk(3, 'f');
  const b = g.openOk(3, 'f');
  assert.deepEqual([a, b], [4, 5]);
  assert.equal(g.open(a, 'x').errno, Errno.NOTDIR);
  g.call('fd_close', a);
  assert.equal(g.openOk(3, 'f'), 4);
});

test('rights: narrowed by path_open and fd_fdstat_set_rights, enforced on calls', () => {
  const { g } = setup();
  g.create(3, 'f', 'data');
  const ro = g.openOk(3, 'f', { rights: READ_RIGHTS, inheriting: 0n });
  const st = g.fdstat(ro);
  assert.equal(st.filetype, Filetype.REGULAR_FILE);
  assert.equal(st.base, READ_RIGHTS);
  assert.equal(g.write(ro, 'x').errno, Errno.BADF);
  assert.equal(g.call('fd_filestat_set_size', ro, 0n), Errno.NOTCAPABLE);
  assert.deepEqual(g.read(ro, 4), { errno: 0, data: 'data' });
  // Narrowing works, widening does not.
  assert.equal(g.call('fd_fdstat_set_rights', ro, Rights.FD_READ, 0n), Errno.SUCCESS);
  assert.equal(g.fdstat(ro).base, Rights.FD_READ);
  assert.equal(g.call('fd_fdstat_set_rights', ro, Rights.FD_READ | Rights.FD_WRITE, 0n), Errno.NOTCAPABLE);
  assert.equal(g.seek(ro, 0n, Whence.SET).errno, Errno.SPIPE);
  assert.equal(g.tell(ro).errno, Errno.SPIPE);
  // A directory without PATH_OPEN cannot open anything.
  const d = g.openOk(3, '.', { rights: Rights.FD_READDIR, inheriting: 0n });
  assert.equal(g.open(d, 'f').errno, Errno.NOTCAPABLE);
  // Inherited rights cap what children get.
  const d2 = g.openOk(3, '.', { rights: Rights.PATH_OPEN, inheriting: Rights.FD_READ });
  const child = g.openOk(d2, 'f');
  assert.equal(g.fdstat(child).base, Rights.FD_READ);
});

test('fd_filestat_get, fd_filestat_set_size, fd_allocate, fd_advise, sync', () => {
  const { g, dir } = setup();
  g.create(3, 'f', '12345');
  const fd = g.openOk(3, 'f');
  const out = g.alloc(64);
  assert.equal(g.call('fd_filestat_get', fd, out), Errno.SUCCESS);
  const host = statSync(join(dir, 'f'), { bigint: true });
  const st = g.filestat(out);
  assert.equal(st.filetype, Filetype.REGULAR_FILE);
  assert.equal(st.size, 5n);
  assert.equal(st.ino, host.ino);
  assert.equal(st.dev, host.dev);
  assert.equal(st.nlink, 1n);
  assert.equal(st.mtim, host.mtimeNs);
  assert.equal(g.call('fd_filestat_set_size', fd, 2n), Errno.SUCCESS);
  assert.equal(readFileSync(join(dir, 'f'), 'utf8'), '12');
  assert.equal(g.call('fd_allocate', fd, 10n, 6n), Errno.SUCCESS);
  assert.equal(statSync(join(dir, 'f')).size, 16);
  assert.equal(g.call('fd_allocate', fd, 0n, 1n), Errno.SUCCESS);
  assert.equal(statSync(join(dir, 'f')).size, 16);
  assert.equal(g.call('fd_advise', fd, 0n, 0n, 1), Errno.SUCCESS);
  assert.equal(g.call('fd_advise', fd, 0n, 0n, 9), Errno.INVAL);
  assert.equal(g.call('fd_sync', fd), Errno.SUCCESS);
  assert.equal(g.call('fd_datasync', fd), Errno.SUCCESS);
  assert.equal(g.call('fd_sync', 3), Errno.SUCCESS);
  assert.equal(g.call('fd_filestat_get', 3, out), Errno.SUCCESS);
  assert.equal(g.filestat(out).filetype, Filetype.DIRECTORY);
  assert.equal(g.call('fd_filestat_set_size', 3, 0n), Errno.ISDIR);
  assert.equal(g.call('fd_filestat_get', 42, out), Errno.BADF);
});

test('fd_filestat_set_times sets, keeps and nows', () => {
  const { g, dir } = setup();
  g.create(3, 'f', '');
  const fd = g.openOk(3, 'f');
  const sec = 1_000_000_000n;
  assert.equal(
    g.call('fd_filestat_set_times', fd, 100n * sec, 200n * sec, Fstflags.ATIM | Fstflags.MTIM),
    Errno.SUCCESS,
  );
  let st = statSync(join(dir, 'f'), { bigint: true });
  assert.equal(st.atimeNs, 100n * sec);
  assert.equal(st.mtimeNs, 200n * sec);
  // Only mtime: atime is kept.
  assert.equal(g.call('fd_filestat_set_times', fd, 0n, 300n * sec, Fstflags.MTIM), Errno.SUCCESS);
  st = statSync(join(dir, 'f'), { bigint: true });
  assert.equal(st.atimeNs, 100n * sec);
  assert.equal(st.mtimeNs, 300n * sec);
  assert.equal(g.call('fd_filestat_set_times', fd, 0n, 0n, Fstflags.MTIM_NOW), Errno.SUCCESS);
  st = statSync(join(dir, 'f'), { bigint: true });
  assert.ok(Math.abs(Number(st.mtimeNs / 1_000_000n) - Date.now()) < 5000);
  assert.equal(st.atimeNs, 100n * sec);
  assert.equal(g.call('fd_filestat_set_times', fd, 0n, 0n, Fstflags.ATIM | Fstflags.ATIM_NOW), Errno.INVAL);
  assert.equal(g.call('fd_filestat_set_times', 3, 5n * sec, 6n * sec, Fstflags.ATIM | Fstflags.MTIM), Errno.SUCCESS);
  assert.equal(statSync(dir, { bigint: true }).mtimeNs, 6n * sec);
});

test('fd_renumber moves a descriptor over an open one', () => {
  const { g } = setup();
  g.create(3, 'a', 'AAA');
  g.create(3, 'b', 'BBB');
  const a = g.openOk(3, 'a');
  const b = g.openOk(3, 'b');
  assert.equal(g.call('fd_renumber', a, b), Errno.SUCCESS);
  assert.deepEqual(g.read(b, 3), { errno: 0, data: 'AAA' });
  assert.equal(g.read(a, 1).errno, Errno.BADF);
  assert.equal(g.call('fd_renumber', b, 77), Errno.BADF);
  assert.equal(g.call('fd_renumber', 77, b), Errno.BADF);
  assert.equal(g.call('fd_renumber', b, b), Errno.SUCCESS);
  assert.deepEqual(g.read(b, 3), { errno: 0, data: '' });
});

test('directories refuse byte I/O', () => {
  const { g } = setup();
  assert.equal(g.read(3, 4).errno, Errno.ISDIR);
  assert.equal(g.write(3, 'x').errno, Errno.ISDIR);
  assert.equal(g.pread(3, 4, 0n).errno, Errno.ISDIR);
});

test('invalid UTF-8 in a path is EILSEQ', () => {
  const { g } = setup();
  const [p, l] = g.put(new Uint8Array([0x66, 0xff, 0xfe]));
  const out = g.alloc(4);
  assert.equal(g.call('path_open', 3, 0, p, l, Oflags.CREAT, Rights.FD_READ, 0n, 0, out), Errno.ILSEQ);
});

import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Errno, Filetype } from '../../src/wasi/constants.js';
import { Guest, tempDir } from './helpers.js';

function setup(): { g: Guest; dir: string } {
  const dir = tempDir();
  writeFileSync(join(dir, 'b-file'), 'x');
  mkdirSync(join(dir, 'a-dir'));
  symlinkSync('b-file', join(dir, 'c-link'));
  return { g: Guest.create({ preopens: [{ guestPath: '/d', hostPath: dir }] }), dir };
}

test('fd_readdir lists ".", "..", then entries sorted, with types, inodes and cookies', () => {
  const { g, dir } = setup();
  const r = g.readdir(3, 4096);
  assert.equal(r.errno, Errno.SUCCESS);
  assert.ok(r.used < 4096, 'a buffer not filled means the end was reached');
  assert.deepEqual(
    r.entries.map((e) => [e.name, e.type, e.next]),
    [
      ['.', Filetype.DIRECTORY, 1n],
      ['..', Filetype.DIRECTORY, 2n],
      ['a-dir', Filetype.DIRECTORY, 3n],
      ['b-file', Filetype.REGULAR_FILE, 4n],
      ['c-link', Filetype.SYMBOLIC_LINK, 5n],
    ],
  );
  assert.equal(r.entries[0]!.ino, statSync(dir, { bigint: true }).ino);
  assert.equal(r.entries[3]!.ino, statSync(join(dir, 'b-file'), { bigint: true }).ino);
  assert.equal(r.entries[4]!.ino, lstatSync(join(dir, 'c-link'), { bigint: true }).ino);
  assert.equal(r.used, 5 * 24 + 1 + 2 + 5 + 6 + 6);
});

test('cookies resume after the last entry seen', () => {
  const { g } = setup();
  const r = g.readdir(3, 4096, 3n);
  assert.deepEqual(
    r.entries.map((e) => e.name),
    ['b-file', 'c-link'],
  );
  assert.equal(g.readdir(3, 4096, 5n).used, 0);
  assert.equal(g.readdir(3, 4096, 1000n).used, 0);
});

test('a too-small buffer is filled completely with a truncated entry', () => {
  const { g } = setup();
  // '.' (25 bytes) fits, '..' (26 bytes) does not fit in the 15 left: its first 15 bytes are there.
  const r = g.readdir(3, 40);
  assert.equal(r.used, 40);
  assert.deepEqual(
    r.entries.map((e) => e.name),
    ['.'],
  );
  const partial = r.raw.subarray(25);
  assert.equal(partial.readBigUInt64LE(0), 2n, "the cut entry's d_next is readable");
  // Smaller than one header.
  const tiny = g.readdir(3, 10);
  assert.equal(tiny.used, 10);
  assert.equal(tiny.raw.readBigUInt64LE(0), 1n);
  // Iterating with small buffers, retrying from the last full entry, still sees everything.
  assert.deepEqual(g.listDir(3, 30), ['.', '..', 'a-dir', 'b-file', 'c-link']);
});

test('an iteration keeps its snapshot; cookie 0 rereads the directory', () => {
  const { g, dir } = setup();
  const first = g.readdir(3, 4096);
  assert.equal(first.entries.length, 5);
  writeFileSync(join(dir, 'a0-new'), '');
  unlinkSync(join(dir, 'c-link'));
  assert.deepEqual(
    g.readdir(3, 4096, 3n).entries.map((e) => e.name),
    ['b-file', 'c-link'],
  );
  assert.deepEqual(g.listDir(3), ['.', '..', 'a-dir', 'a0-new', 'b-file']);
});

test('readdir of a subdirectory; readdir of a file is ENOTDIR', () => {
  const { g, dir } = setup();
  writeFileSync(join(dir, 'a-dir', 'x'), '');
  const sub = g.openDir(3, 'a-dir');
  const entries = g.readdir(sub, 4096).entries;
  assert.deepEqual(
    entries.map((e) => e.name),
    ['.', '..', 'x'],
  );
  assert.equal(entries[1]!.ino, statSync(dir, { bigint: true }).ino);
  const f = g.openOk(3, 'b-file');
  assert.equal(g.readdir(f, 100).errno, Errno.NOTDIR);
  assert.equal(g.readdir(77, 100).errno, Errno.BADF);
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { hasCode } from '../../src/platform/errors.js';
import { Clockid, Errno, Oflags } from '../../src/wasi/constants.js';
import { errnoOf, knownErrno, redirectHostBugReports, WasiError } from '../../src/wasi/errors.js';
import { GuestMemory } from '../../src/wasi/memory.js';
import { Guest, tempDir } from './helpers.js';

const reports: string[] = [];
after(redirectHostBugReports((text) => reports.push(text)));

/** The Node system error that reading `path` raises. */
function systemError(path: string): unknown {
  try {
    readFileSync(path);
  } catch (error) {
    return error;
  }
  assert.fail(`${path} was readable`);
}

test('known failures map to their errno, silently', () => {
  reports.length = 0;
  assert.equal(errnoOf(new WasiError(Errno.BADF), 'fd_read'), Errno.BADF);
  assert.equal(errnoOf(systemError(join(tempDir(), 'absent')), 'path_open'), Errno.NOENT);
  assert.equal(errnoOf(systemError(tempDir()), 'path_open'), Errno.ISDIR);
  assert.equal(knownErrno(new RangeError('Offset is outside the bounds of the DataView')), undefined);
  assert.equal(knownErrno(Object.assign(new Error('odd'), { code: 'ENOTATABLEENTRY' })), undefined);
  assert.deepEqual(reports, []);
});

test('guest memory accessors fail with WasiError(FAULT) out of bounds, not with a RangeError', () => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const mem = new GuestMemory();
  mem.bind(memory);
  const end = memory.buffer.byteLength;
  const fault = (e: unknown) => e instanceof WasiError && e.errno === Errno.FAULT && hasCode(e, 'ROAM_WASI_ERRNO');
  assert.throws(() => mem.getU32(end - 2), fault);
  assert.throws(() => mem.setU64(end - 4, 1n), fault);
  assert.throws(() => mem.getU8(-1), fault);
  assert.throws(() => mem.bytes(end - 8, 64), fault);
  assert.throws(() => mem.iovecs(end - 4, 1), fault);
  assert.equal(mem.getU32(end - 4), 0);
  assert.equal(mem.bytes(end, 0).length, 0);
  // After memory.grow the new pages are in bounds.
  memory.grow(1);
  mem.setU32(end, 7);
  assert.equal(mem.getU32(end), 7);
});

test('an unknown failure is a host bug: EIO, reported once per function with its stack', () => {
  reports.length = 0;
  const bug = new TypeError('cannot read properties of undefined');
  assert.equal(errnoOf(bug, 'fd_write'), Errno.IO);
  assert.equal(errnoOf(new RangeError('Invalid array length'), 'fd_write'), Errno.IO);
  assert.equal(reports.length, 1);
  assert.match(reports[0]!, /^roam: host bug in fd_write: TypeError: cannot read properties of undefined\n {4}at /);
  assert.ok(reports[0]!.includes(bug.stack!));
  assert.equal(errnoOf(bug, 'fd_read'), Errno.IO);
  assert.equal(reports.length, 2);
  assert.match(reports[1]!, /^roam: host bug in fd_read: TypeError/);
});

test('through the imports: a broken clock is a host bug in clock_time_get, a bad pointer is EFAULT', () => {
  reports.length = 0;
  const clock = {
    realtime: () => 0n,
    monotonic: () => 0n,
    cputime: (): bigint => {
      throw new Error('clock source broke');
    },
  };
  const g = Guest.create({ clock });
  const out = g.alloc(8);
  assert.equal(g.call('clock_time_get', Clockid.PROCESS_CPUTIME_ID, 0n, out), Errno.IO);
  assert.equal(g.call('clock_time_get', Clockid.PROCESS_CPUTIME_ID, 0n, out), Errno.IO);
  assert.equal(reports.length, 1);
  assert.match(reports[0]!, /^roam: host bug in clock_time_get: Error: clock source broke\n {4}at /);
  // Known failures through the same path stay quiet.
  assert.equal(g.call('clock_time_get', Clockid.MONOTONIC, 0n, g.memory.buffer.byteLength - 4), Errno.FAULT);
  assert.equal(g.call('clock_time_get', 99, 0n, out), Errno.INVAL);
  assert.equal(reports.length, 1);
});

test('guest arguments the host cannot pass on are errnos, not host bugs', () => {
  reports.length = 0;
  const g = Guest.create({ preopens: [{ guestPath: '/data', hostPath: tempDir() }] });
  const fd = g.openOk(3, 'f.txt', { oflags: Oflags.CREAT });
  assert.equal(g.call('fd_filestat_set_size', fd, 2n ** 64n - 1n), Errno.FBIG);
  assert.equal(g.call('fd_allocate', fd, 2n ** 62n, 2n ** 62n), Errno.FBIG);
  // A directory listing into a buffer outside memory: EFAULT before anything is read.
  const end = g.memory.buffer.byteLength;
  assert.equal(g.call('fd_readdir', 3, end - 8, 0xffffffff, 0n, g.alloc(4)), Errno.FAULT);
  assert.deepEqual(reports, []);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Clockid, Errno } from '../../src/wasi/constants.js';
import { redirectHostBugReports } from '../../src/wasi/errors.js';
import { WasiExit, WasiHost } from '../../src/wasi/host.js';
import { Guest, tempDir } from './helpers.js';

test('args_sizes_get and args_get lay out NUL-terminated strings', () => {
  const g = Guest.create({ args: ['prog', 'héllo', ''] });
  const count = g.alloc(4);
  const size = g.alloc(4);
  assert.equal(g.call('args_sizes_get', count, size), Errno.SUCCESS);
  assert.equal(g.u32(count), 3);
  assert.equal(g.u32(size), 5 + 7 + 1);
  const argv = g.alloc(12);
  const buf = g.alloc(g.u32(size));
  assert.equal(g.call('args_get', argv, buf), Errno.SUCCESS);
  assert.equal(g.u32(argv), buf);
  assert.equal(g.bytes(g.u32(argv), 5).toString(), 'prog\0');
  assert.equal(g.bytes(g.u32(argv + 4), 7).toString(), 'héllo\0');
  assert.equal(g.u32(argv + 8), buf + 12);
  assert.equal(g.u8(buf + 12), 0);
});

test('environ from a record and from a list keep KEY=value', () => {
  for (const env of [{ A: '1', PATH: '/bin' }, ['A=1', 'PATH=/bin']]) {
    const g = Guest.create({ env });
    const count = g.alloc(4);
    const size = g.alloc(4);
    assert.equal(g.call('environ_sizes_get', count, size), Errno.SUCCESS);
    assert.equal(g.u32(count), 2);
    assert.equal(g.u32(size), 4 + 10);
    const ptrs = g.alloc(8);
    const buf = g.alloc(14);
    assert.equal(g.call('environ_get', ptrs, buf), Errno.SUCCESS);
    assert.equal(g.bytes(g.u32(ptrs), 4).toString(), 'A=1\0');
    assert.equal(g.bytes(g.u32(ptrs + 4), 10).toString(), 'PATH=/bin\0');
  }
});

test('clock_time_get reads every clock and rejects unknown ids', () => {
  const g = Guest.create();
  const out = g.alloc(8);
  assert.equal(g.call('clock_time_get', Clockid.REALTIME, 0n, out), Errno.SUCCESS);
  const wall = Number(g.u64(out) / 1_000_000n);
  assert.ok(Math.abs(wall - Date.now()) < 1000, `realtime ${wall} vs ${Date.now()}`);
  assert.equal(g.call('clock_time_get', Clockid.MONOTONIC, 0n, out), Errno.SUCCESS);
  const m1 = g.u64(out);
  assert.equal(g.call('clock_time_get', Clockid.MONOTONIC, 0n, out), Errno.SUCCESS);
  assert.ok(g.u64(out) >= m1);
  for (const id of [Clockid.PROCESS_CPUTIME_ID, Clockid.THREAD_CPUTIME_ID]) {
    assert.equal(g.call('clock_time_get', id, 0n, out), Errno.SUCCESS);
    assert.ok(g.u64(out) > 0n);
  }
  assert.equal(g.call('clock_time_get', 9, 0n, out), Errno.INVAL);
  assert.equal(g.call('clock_res_get', Clockid.MONOTONIC, out), Errno.SUCCESS);
  assert.equal(g.u64(out), 1n);
  assert.equal(g.call('clock_res_get', Clockid.REALTIME, out), Errno.SUCCESS);
  assert.equal(g.u64(out), 1_000_000n);
  assert.equal(g.call('clock_res_get', Clockid.PROCESS_CPUTIME_ID, out), Errno.SUCCESS);
  assert.equal(g.u64(out), 1000n);
  assert.equal(g.call('clock_res_get', 4, out), Errno.INVAL);
});

test('a custom clock source is used', () => {
  const g = Guest.create({ clock: { realtime: () => 7n, monotonic: () => 42n, cputime: () => 3n } });
  const out = g.alloc(8);
  g.call('clock_time_get', Clockid.MONOTONIC, 0n, out);
  assert.equal(g.u64(out), 42n);
  g.call('clock_time_get', Clockid.REALTIME, 0n, out);
  assert.equal(g.u64(out), 7n);
});

test('random_get fills the buffer', () => {
  const g = Guest.create();
  const buf = g.alloc(64);
  assert.equal(g.call('random_get', buf, 64), Errno.SUCCESS);
  assert.ok(g.bytes(buf, 64).some((b) => b !== 0));
});

test('proc_exit throws WasiExit with the code; proc_raise and sched_yield', () => {
  const g = Guest.create();
  assert.throws(
    () => g.call('proc_exit', 3),
    (e: unknown) => e instanceof WasiExit && e.code === 3,
  );
  assert.equal(g.call('proc_raise', 2), Errno.NOSYS);
  assert.equal(g.call('sched_yield'), Errno.SUCCESS);
});

test('socket calls on other fds are ENOTSOCK; unknown fds are EBADF', () => {
  // fd 3 is a directory (stdio may be a real socket when the test runner pipes it).
  const g = Guest.create({ preopens: [{ guestPath: '/data', hostPath: tempDir() }] });
  assert.equal(g.call('sock_accept', 3, 0, g.alloc(4)), Errno.NOTSOCK);
  assert.equal(g.call('sock_recv', 99, 0, 0, 0, 0, 0), Errno.BADF);
  assert.equal(g.call('sock_send', 3, 0, 0, 0, 0), Errno.NOTSOCK);
  assert.equal(g.call('sock_shutdown', 3, 2), Errno.NOTSOCK);
});

test('out-of-bounds pointers give EFAULT, never an exception', () => {
  const g = Guest.create({ args: ['a'] });
  const end = g.memory.buffer.byteLength;
  assert.equal(g.call('args_sizes_get', end - 2, 0), Errno.FAULT);
  assert.equal(g.call('random_get', end - 8, 64), Errno.FAULT);
  assert.equal(g.call('fd_write', 1, end + 100, 1, 0), Errno.FAULT);
  assert.equal(g.call('clock_time_get', Clockid.MONOTONIC, 0n, -8), Errno.FAULT);
});

test('memory growth is seen by later calls', () => {
  const g = Guest.create({ args: ['grown'] });
  const before = g.memory.buffer.byteLength;
  g.memory.grow(1);
  const count = before + 16;
  assert.equal(g.call('args_sizes_get', count, count + 4), Errno.SUCCESS);
  assert.equal(g.u32(count), 1);
});

test('a call before bindMemory fails with an errno instead of throwing, and is reported as a host bug', () => {
  const reports: string[] = [];
  const restore = redirectHostBugReports((text) => reports.push(text));
  try {
    const host = new WasiHost();
    const fns = host.imports().wasi_snapshot_preview1 as Record<string, (...a: number[]) => number>;
    assert.equal(fns.args_sizes_get!(0, 4), Errno.IO);
    assert.match(
      reports.join(''),
      /^roam: host bug in args_sizes_get: Error: WASI host: bindMemory\(\) was not called/,
    );
  } finally {
    restore();
  }
});

test('preopens: fd_prestat_get and fd_prestat_dir_name', () => {
  const g = Guest.create({
    preopens: [
      { guestPath: '/data', hostPath: tempDir() },
      { guestPath: '.', hostPath: tempDir() },
    ],
  });
  const out = g.alloc(8);
  assert.equal(g.call('fd_prestat_get', 3, out), Errno.SUCCESS);
  assert.equal(g.u8(out), 0);
  assert.equal(g.u32(out + 4), 5);
  const name = g.alloc(8);
  assert.equal(g.call('fd_prestat_dir_name', 3, name, 5), Errno.SUCCESS);
  assert.equal(g.bytes(name, 5).toString(), '/data');
  assert.equal(g.call('fd_prestat_dir_name', 3, name, 2), Errno.NAMETOOLONG);
  assert.equal(g.call('fd_prestat_get', 4, out), Errno.SUCCESS);
  assert.equal(g.u32(out + 4), 1);
  assert.equal(g.call('fd_prestat_get', 5, out), Errno.BADF);
  assert.equal(g.call('fd_prestat_get', 1, out), Errno.BADF);
});

test('a missing preopen directory is a clear error at construction', () => {
  assert.throws(() => new WasiHost({ preopens: [{ guestPath: '/x', hostPath: '/nonexistent/roam-test' }] }), {
    code: 'ROAM_WASI_SETUP',
    message: /fd 3, directory "\/x".*ENOENT/,
  });
});

test('listening sockets come first (LISTEN_FDS) and do not hide the preopened directories from libc', () => {
  const network = { gateway: '127.0.0.1:9', container: 'aaaaaaaaaaaa', token: 't', ports: [80, 81] };
  const g = Guest.create({ network, preopens: [{ guestPath: '/data', hostPath: tempDir() }] });
  const out = g.alloc(8);
  for (const fd of [3, 4]) {
    assert.equal(g.call('fd_prestat_get', fd, out), Errno.SUCCESS);
    assert.notEqual(g.bytes(out, 1)[0], 0, `fd ${fd} is not a directory preopen`);
  }
  assert.equal(g.call('fd_prestat_get', 5, out), Errno.SUCCESS);
  assert.equal(g.bytes(out, 1)[0], 0, 'fd 5 is the directory');
  assert.equal(g.call('fd_prestat_get', 6, out), Errno.BADF);
  const stat = g.alloc(24);
  assert.equal(g.call('fd_fdstat_get', 3, stat), Errno.SUCCESS);
  assert.equal(g.bytes(stat, 1)[0], 6, 'a stream socket');
  assert.equal(g.call('fd_fdstat_set_flags', 3, 4), Errno.SUCCESS, 'O_NONBLOCK');
  assert.equal(g.call('sock_accept', 3, 0, g.alloc(4)), Errno.AGAIN, 'no client yet: EAGAIN when non-blocking');
});

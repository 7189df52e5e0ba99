import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Errno, Fdflags, Filetype, Rights, Whence } from '../../src/wasi/constants.js';
import { WasiHost } from '../../src/wasi/host.js';
import { fifo, Guest, RecordingBlocker, tempDir } from './helpers.js';

function files(): { dir: string; out: number; err: number } {
  const dir = tempDir();
  return { dir, out: openSync(join(dir, 'out'), 'w'), err: openSync(join(dir, 'err'), 'w') };
}

test('stdout and stderr go to their host fds', () => {
  const { dir, out, err } = files();
  const g = Guest.create({ stdout: out, stderr: err });
  assert.deepEqual(g.write(1, 'hello ', 'out\n'), { errno: 0, n: 10 });
  assert.deepEqual(g.write(2, 'oops\n'), { errno: 0, n: 5 });
  assert.equal(readFileSync(join(dir, 'out'), 'utf8'), 'hello out\n');
  assert.equal(readFileSync(join(dir, 'err'), 'utf8'), 'oops\n');
  closeSync(out);
  closeSync(err);
});

test('stdio fdstat: filetype of the host fd, no seek rights (isatty relies on it)', () => {
  const { out, err } = files();
  const g = Guest.create({ stdout: out, stderr: err, stdin: openSync('/dev/null', 'r') });
  const st = g.fdstat(1);
  assert.equal(st.filetype, Filetype.REGULAR_FILE);
  assert.equal(st.base & (Rights.FD_SEEK | Rights.FD_TELL), 0n);
  assert.equal(g.fdstat(0).filetype, Filetype.CHARACTER_DEVICE);
  assert.equal(g.seek(1, 0n, Whence.CUR).errno, Errno.SPIPE);
  assert.equal(g.pread(0, 1, 0n).errno, Errno.SPIPE);
  const stat = g.alloc(64);
  assert.equal(g.call('fd_filestat_get', 1, stat), Errno.SUCCESS);
  assert.equal(g.filestat(stat).ino, fstatSync(out, { bigint: true }).ino);
});

test('closing a stdio fd leaves the host fd open', () => {
  const { dir, out, err } = files();
  const g = Guest.create({ stdout: out, stderr: err });
  assert.equal(g.call('fd_close', 1), Errno.SUCCESS);
  assert.equal(g.write(1, 'x').errno, Errno.BADF);
  writeSync(out, 'still open');
  assert.equal(readFileSync(join(dir, 'out'), 'utf8'), 'still open');
});

test('stdin from a regular file is read synchronously even when the guest could suspend', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'in'), 'line one\nline two\n');
  const stdin = openSync(join(dir, 'in'), 'r');
  const blocker = new RecordingBlocker();
  const g = Guest.create({ stdin, blocker });
  assert.deepEqual(g.read(0, 9), { errno: 0, data: 'line one\n' });
  assert.deepEqual(g.read(0, 100), { errno: 0, data: 'line two\n' });
  assert.deepEqual(g.read(0, 100), { errno: 0, data: '' });
  assert.equal(blocker.last, undefined);
  closeSync(stdin);
});

test('stdin from a pipe, synchronous mode: blocking reads and EOF', async () => {
  const p = await fifo();
  const g = Guest.create({ stdin: p.r });
  writeSync(p.w, 'abc');
  assert.deepEqual(g.read(0, 10), { errno: 0, data: 'abc' });
  closeSync(p.w);
  assert.deepEqual(g.read(0, 10), { errno: 0, data: '' });
  closeSync(p.r);
  const g2 = Guest.create({ stdin: openSync('/dev/null', 'r') });
  assert.deepEqual(g2.read(0, 10), { errno: 0, data: '' });
});

test('stdin from a pipe, suspending mode: suspend, buffer, serve, EOF once', async () => {
  const p = await fifo();
  const blocker = new RecordingBlocker();
  const g = Guest.create({ stdin: p.r, blocker });
  assert.equal(g.call('fd_read', 0, g.iovecs([4]).ptr, 1, g.alloc(4)), RecordingBlocker.SUSPENDED);
  assert.ok(blocker.last?.ready instanceof Promise);
  writeSync(p.w, 'hello world');
  await blocker.resume();
  // The re-run call finds the data; what does not fit stays buffered for the next read.
  assert.deepEqual(g.read(0, 4), { errno: 0, data: 'hell' });
  assert.deepEqual(g.read(0, 2, 3), { errno: 0, data: 'o wor' });
  assert.equal(JSON.stringify(g.host.capture().fds[0]).includes(Buffer.from('ld').toString('base64')), true);
  assert.deepEqual(g.read(0, 100), { errno: 0, data: 'ld' });
  // Non-blocking: EAGAIN instead of suspending, while a host read is started anyway.
  assert.equal(g.call('fd_fdstat_set_flags', 0, Fdflags.NONBLOCK), Errno.SUCCESS);
  assert.equal(g.read(0, 10).errno, Errno.AGAIN);
  writeSync(p.w, 'more');
  assert.equal(g.call('fd_fdstat_set_flags', 0, 0), Errno.SUCCESS);
  let r = g.read(0, 10);
  if (r.errno !== Errno.SUCCESS) {
    await blocker.resume();
    r = g.read(0, 10);
  }
  assert.deepEqual(r, { errno: 0, data: 'more' });
  // End of input: reported once per host EOF.
  assert.equal(g.call('fd_read', 0, g.iovecs([4]).ptr, 1, g.alloc(4)), RecordingBlocker.SUSPENDED);
  closeSync(p.w);
  await blocker.resume();
  assert.deepEqual(g.read(0, 10), { errno: 0, data: '' });
  // Once the host input has ended, reads keep returning 0 without suspending.
  assert.deepEqual(g.read(0, 10), { errno: 0, data: '' });
});

test('a guest writing to a closed stdout gets an errno, the host does not crash', () => {
  const g = new Guest(new WasiHost({ stdout: 987654 }));
  assert.equal(g.write(1, 'x').errno, Errno.BADF);
  assert.equal(g.fdstat(1).filetype, Filetype.UNKNOWN);
});

test('no stdin read or timer outlives a wait: after a poll, and once the guest is captured', async () => {
  const hostModule = new URL('../../src/wasi/host.js', import.meta.url).href;
  // A child process whose stdin is a pipe that never gets data: it must still exit by itself.
  const script = `
    import { WasiHost } from ${JSON.stringify(hostModule)};
    let wait;
    const blocker = { canSuspend: true, takeResumeMemo: () => undefined, suspend: (ready) => { wait = ready; return 0xdead; } };
    const host = new WasiHost({ blocker });
    const memory = new WebAssembly.Memory({ initial: 1 });
    host.bindMemory(memory);
    const view = new DataView(memory.buffer);
    const fns = host.imports().wasi_snapshot_preview1;
    // poll_oneoff on stdin and a clock: the clock ends the wait (mode 'fired': at once, without suspending).
    view.setUint8(8, 1);
    view.setUint32(16, 0, true);
    view.setUint8(48 + 8, 0);
    view.setUint32(48 + 16, 1, true);
    const timeout = { fired: 0n, sleep: 60000000000n }[process.argv[1]] ?? 30000000n;
    view.setBigUint64(48 + 24, timeout, true);
    if (fns.poll_oneoff(0, 200, 2, 400) === 0xdead) {
      // mode 'sleep': the guest is stopped and captured in the middle of a 60 s wait.
      if (process.argv[1] === 'sleep') host.capture();
      else await wait;
    }
    if (process.argv[1] === 'read') {
      // fd_read then suspends with a read pending; capturing the stopped guest ends the reading.
      view.setUint32(500, 600, true);
      view.setUint32(504, 16, true);
      wait = undefined;
      fns.fd_read(0, 500, 1, 700);
      if (!(wait instanceof Promise)) process.exit(2);
      host.capture();
    }
    process.stdout.write('guest done');
  `;
  const run = async (mode: string) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, mode], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const killer = setTimeout(() => child.kill(), 8000);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(killer);
    child.stdin.end();
    return { code, out };
  };
  const [fired, poll, read, sleep] = await Promise.all([run('fired'), run('poll'), run('read'), run('sleep')]);
  assert.deepEqual(fired, { code: 0, out: 'guest done' }, 'the child exited on its own after a poll that did not wait');
  assert.deepEqual(poll, { code: 0, out: 'guest done' }, 'the child exited on its own after a poll that timed out');
  assert.deepEqual(read, { code: 0, out: 'guest done' }, 'the child exited on its own after a capture during a read');
  assert.deepEqual(sleep, { code: 0, out: 'guest done' }, 'the child exited on its own after a capture during a poll');
});

test('close() closes host files', () => {
  const dir = tempDir();
  const g = Guest.create({ preopens: [{ guestPath: '/', hostPath: dir }] });
  g.create(3, 'f', 'x');
  g.openOk(3, 'f');
  const before = readdirSync('/proc/self/fd').length;
  g.host.close();
  assert.equal(readdirSync('/proc/self/fd').length, before - 1);
  assert.deepEqual(g.host.capture().fds, []);
});

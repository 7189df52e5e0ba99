import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { LateHost } from '../../src/container/late-host.js';
import type { Blocker } from '../../src/engine/blocking.js';
import { createStopFlag, Instance, requestStop } from '../../src/engine/instance.js';
import { type LoadedModule, loadModule } from '../../src/engine/module.js';
import { Errno, Fdflags, Filetype, HOST_MODULES, Oflags, POSIX_MODULE, Whence } from '../../src/wasi/constants.js';
import { PIPE_CAPACITY } from '../../src/wasi/descriptors/pipe.js';
import { MAX_FDS } from '../../src/wasi/fd-table.js';
import { WasiExit, WasiHost, type WasiHostState } from '../../src/wasi/host.js';
import { buildFixture } from '../helpers.js';
import { fifo, Guest, RecordingBlocker, tempDir } from './helpers.js';

// --- C guests calling roam_posix, run in this thread -------------------------------------------

let modules: { plain: LoadedModule; roam: LoadedModule };
before(async () => {
  const built = buildFixture('dup-pipe', tempDir());
  modules = { plain: await loadModule(built.plain), roam: await loadModule(built.roam) };
});

const isExit = (e: unknown) => (e instanceof WasiExit ? e.code : undefined);

interface Started {
  instance: Instance;
  host: WasiHost;
  flag: Int32Array;
  stdout: () => string;
  data: string;
}

/** Builds `dup-pipe TEST` with a fresh directory at /data and stdout into a file. */
function start(form: 'plain' | 'roam', name: string, stdin?: number): Started {
  const data = tempDir();
  const out = join(tempDir(), 'stdout');
  const stdoutFd = openSync(out, 'w');
  const flag = createStopFlag();
  let host!: WasiHost;
  const instance = new Instance(
    modules[form],
    (blocker) =>
      (host = new WasiHost({
        args: ['dup-pipe', name],
        preopens: [{ guestPath: '/data', hostPath: data }],
        stdout: stdoutFd,
        ...(stdin === undefined ? {} : { stdin }),
        blocker,
      })),
    isExit,
    flag,
  );
  return { instance, host, flag, stdout: () => readFileSync(out, 'utf8'), data };
}

async function runToEnd(form: 'plain' | 'roam', name: string): Promise<Started> {
  const s = start(form, name);
  const outcome = await s.instance.run();
  assert.deepEqual(
    { outcome, stdout: s.stdout() },
    { outcome: { kind: 'exited', exitCode: 0 }, stdout: `ok ${name}\n` },
  );
  s.host.close();
  return s;
}

for (const form of ['plain', 'roam'] as const) {
  test(`${form}: a dup shares the offset and the flags; dup'ing a preopen works`, async () => {
    const { data } = await runToEnd(form, 'dup-offset');
    assert.equal(readFileSync(join(data, 'offset.txt'), 'utf8'), 'hello world');
  });

  test(`${form}: dup2 onto stdout redirects output into a file, and back`, async () => {
    const s = start(form, 'dup2-stdout');
    assert.deepEqual(await s.instance.run(), { kind: 'exited', exitCode: 0 });
    assert.equal(s.stdout(), 'back on stdout\nok dup2-stdout\n');
    assert.equal(readFileSync(join(s.data, 'out.txt'), 'utf8'), 'into the file\n');
  });

  test(`${form}: closing one fd of a description keeps the other working`, async () => {
    const { data } = await runToEnd(form, 'close-dup');
    assert.equal(readFileSync(join(data, 'close.txt'), 'utf8'), 'still open');
  });

  test(`${form}: a pipe carries bytes, ends with EOF, is a FIFO to fstat, cannot seek, EPIPE without reader`, async () => {
    await runToEnd(form, 'pipe');
  });

  test(`${form}: non-blocking ends: EAGAIN on an empty read end, a full pipe holds 64 KiB`, async () => {
    await runToEnd(form, 'pipe-nonblock');
  });

  test(`${form}: poll on both ends (data, room, a timeout, EOF)`, async () => {
    await runToEnd(form, 'pipe-poll');
  });
}

test('plain: a blocking read of an empty pipe that only the guest could fill is EDEADLK', async () => {
  await runToEnd('plain', 'block');
});

test('roam: a blocking read of an empty pipe suspends the guest, which can still be stopped', async () => {
  const s = start('roam', 'block');
  // The guest runs in this thread until it suspends in fd_read: nothing can wake it but a stop.
  const running = s.instance.run();
  const late = await Promise.race([running, new Promise((r) => setTimeout(() => r('waiting'), 50))]);
  assert.equal(late, 'waiting');
  requestStop(s.flag);
  assert.deepEqual(await running, { kind: 'stopped' });
  const fds = (s.host.capture() as WasiHostState).fds;
  assert.deepEqual(
    fds.filter((f) => f.kind === 'pipe').map((f) => f.kind === 'pipe' && [f.fd, f.end, f.buffered]),
    [
      [4, 'read', ''],
      [5, 'write', ''],
    ],
  );
  s.host.close();
});

test('roam: a guest stopped with a dup and a pipe holding data goes on after a restore on a new host', async () => {
  const input = await fifo();
  const s = start('roam', 'migrate', input.r);
  const running = s.instance.run();
  // It ran until it waited for stdin: everything is set up.
  assert.equal(s.stdout(), 'ready f=4 d=5 pipe=6,7\n');
  requestStop(s.flag);
  assert.deepEqual(await running, { kind: 'stopped' });
  const snapshot = s.instance.capture();
  const state = viaJson(snapshot.host as WasiHostState);
  assert.deepEqual(
    state.fds.slice(4).map((f) => ({ ...f, rightsBase: undefined, rightsInheriting: undefined })),
    [
      { fd: 4, kind: 'file', preopen: '/data', path: 'migrate.txt', offset: '7', fdflags: 0 },
      { fd: 5, kind: 'dup', of: 4 },
      { fd: 6, kind: 'pipe', end: 'read', pipe: 0, buffered: b64('unread data'), fdflags: 0 },
      { fd: 7, kind: 'pipe', end: 'write', pipe: 0, buffered: b64('unread data'), fdflags: 0 },
    ].map((f) => ({ ...f, rightsBase: undefined, rightsInheriting: undefined })),
  );
  const memory = snapshot.memory.slice();
  s.host.close();
  closeSync(input.w);

  const dir = tempDir();
  writeFileSync(join(dir, 'stdin'), 'go\n');
  const stdin = openSync(join(dir, 'stdin'), 'r');
  const stdout = openSync(join(dir, 'stdout'), 'w');
  // Restored the way an incoming migration does it: the instance first, its imports bound later.
  const names = WebAssembly.Module.imports(modules.roam.module)
    .filter((i) => HOST_MODULES.includes(i.module) && i.kind === 'function')
    .map(({ module, name }) => ({ module, name }));
  assert.deepEqual(
    names.filter((i) => i.module === POSIX_MODULE).map((i) => i.name),
    ['fd_dup', 'fd_dup2', 'fd_pipe', 'fd_is_pipe'],
  );
  const late = new LateHost(names);
  let blocker!: Blocker;
  const moved = new Instance(
    modules.roam,
    (given) => {
      blocker = given;
      return late;
    },
    isExit,
  );
  moved.resetMemory(memory.length).set(memory);
  const host = WasiHost.restore(state, {
    preopens: [{ guestPath: '/data', hostPath: s.data }],
    stdin,
    stdout,
    blocker,
  });
  late.bind(host);
  moved.restoreState(snapshot);
  assert.deepEqual(await moved.run(), { kind: 'exited', exitCode: 0 });
  host.close();
  closeSync(stdin);
  closeSync(stdout);
  assert.equal(readFileSync(join(dir, 'stdout'), 'utf8'), 'moved: got go\nok migrate\n');
  assert.equal(readFileSync(join(s.data, 'migrate.txt'), 'utf8'), 'before after');
});

// --- The imports driven directly ---------------------------------------------------------------

const b64 = (s: string) => Buffer.from(s).toString('base64');

function viaJson(state: WasiHostState): WasiHostState {
  const back = JSON.parse(JSON.stringify(state)) as WasiHostState;
  assert.deepEqual(back, state, 'the state is plain JSON data');
  return back;
}

function setup(blocker?: RecordingBlocker): { g: Guest; dir: string } {
  const dir = tempDir();
  writeFileSync(join(dir, 'data.txt'), 'abcdefghijklmnopqrstuvwxyz');
  const g = Guest.create({ preopens: [{ guestPath: '/data', hostPath: dir }], ...(blocker ? { blocker } : {}) });
  return { g, dir };
}

function dup(g: Guest, fd: number, min = 0): { errno: number; fd: number } {
  const out = g.alloc(4);
  const errno = g.posix('fd_dup', fd, min, out);
  return { errno, fd: g.u32(out) };
}

function pipe(g: Guest): [number, number] {
  const out = g.alloc(8);
  assert.equal(g.posix('fd_pipe', out), Errno.SUCCESS);
  return [g.u32(out), g.u32(out + 4)];
}

test('fd_dup: lowest free fd from min_fd; EBADF, EINVAL, EFAULT, EMFILE', () => {
  const { g } = setup();
  const f = g.openOk(3, 'data.txt');
  assert.deepEqual(dup(g, f), { errno: 0, fd: f + 1 });
  assert.deepEqual(dup(g, f, 10), { errno: 0, fd: 10 });
  assert.equal(g.call('fd_close', 0), Errno.SUCCESS);
  assert.deepEqual(dup(g, f), { errno: 0, fd: 0 });
  assert.equal(dup(g, 99).errno, Errno.BADF);
  assert.equal(dup(g, f, -1).errno, Errno.INVAL);
  assert.equal(dup(g, f, MAX_FDS).errno, Errno.INVAL);
  assert.equal(g.posix('fd_dup', f, 0, g.memory.buffer.byteLength), Errno.FAULT);
  // The failed call left nothing behind: the next dup gets the same number as before.
  assert.deepEqual(dup(g, f), { errno: 0, fd: f + 2 });
  assert.deepEqual(dup(g, f, MAX_FDS - 1), { errno: 0, fd: MAX_FDS - 1 });
  assert.equal(dup(g, f, MAX_FDS - 1).errno, Errno.MFILE);
  // Every number taken but one: a pipe needs two, so EMFILE, and nothing is opened.
  for (let fd = 0; fd < MAX_FDS; fd++) if (fd !== 3) g.posix('fd_dup2', f, fd);
  assert.equal(g.call('fd_close', 1000), Errno.SUCCESS);
  const out = g.alloc(8);
  assert.equal(g.posix('fd_pipe', out), Errno.MFILE);
  assert.equal(dup(g, f).fd, 1000);
  assert.equal(dup(g, f).errno, Errno.MFILE);
  assert.equal(g.call('fd_close', 1000), Errno.SUCCESS);
  assert.equal(g.call('fd_close', 7), Errno.SUCCESS);
  assert.equal(g.posix('fd_pipe', out), Errno.SUCCESS);
  assert.deepEqual([g.u32(out), g.u32(out + 4)], [7, 1000]);
  assert.equal(g.call('path_open', 3, 0, ...g.put('data.txt'), 0, 0n, 0n, 0, g.alloc(4)), Errno.MFILE);
});

test('fd_dup2: replaces an open fd, fd == to only checks fd, EBADF for a bad fd or target', () => {
  const { g, dir } = setup();
  const f = g.openOk(3, 'data.txt');
  const other = g.openOk(3, 'other.txt', { oflags: Oflags.CREAT });
  assert.equal(g.posix('fd_dup2', f, other), Errno.SUCCESS);
  assert.deepEqual(g.read(other, 3), { errno: 0, data: 'abc' });
  assert.deepEqual(g.read(f, 3), { errno: 0, data: 'def' });
  assert.equal(g.posix('fd_dup2', f, f), Errno.SUCCESS);
  assert.equal(g.posix('fd_dup2', 99, 99), Errno.BADF);
  assert.equal(g.posix('fd_dup2', 99, f), Errno.BADF);
  assert.equal(g.posix('fd_dup2', f, -1), Errno.BADF);
  assert.equal(g.posix('fd_dup2', f, MAX_FDS), Errno.BADF);
  // Onto a free number, far up.
  assert.equal(g.posix('fd_dup2', f, 100), Errno.SUCCESS);
  assert.equal(g.tell(100).pos, 6n);
  // The dup keeps the file open after the original fd is closed, and closing the last one closes it.
  assert.equal(g.call('fd_close', f), Errno.SUCCESS);
  assert.equal(g.call('fd_close', other), Errno.SUCCESS);
  assert.deepEqual(g.read(100, 2), { errno: 0, data: 'gh' });
  assert.equal(g.call('fd_close', 100), Errno.SUCCESS);
  assert.equal(g.read(100, 2).errno, Errno.BADF);
  assert.equal(readFileSync(join(dir, 'data.txt'), 'utf8'), 'abcdefghijklmnopqrstuvwxyz');
});

test('fd_renumber between fds of one description closes only the source fd; host close closes each once', () => {
  const { g } = setup();
  const f = g.openOk(3, 'data.txt');
  const d = dup(g, f).fd;
  assert.equal(g.call('fd_renumber', f, d), Errno.SUCCESS);
  assert.equal(g.read(f, 1).errno, Errno.BADF);
  assert.deepEqual(g.read(d, 3), { errno: 0, data: 'abc' });
  dup(g, d);
  dup(g, d);
  assert.doesNotThrow(() => g.host.close());
});

test('rights and flags belong to the description: set through one fd, seen through the other', () => {
  const { g } = setup();
  const [r] = pipe(g);
  const r2 = dup(g, r).fd;
  assert.equal(g.call('fd_fdstat_set_flags', r, Fdflags.NONBLOCK), Errno.SUCCESS);
  assert.equal(g.fdstat(r2).flags, Fdflags.NONBLOCK);
  assert.equal(g.read(r2, 1).errno, Errno.AGAIN);
});

test('pipe ends: filetype, rights, ESPIPE, EBADF on the wrong end, fd_filestat_get', () => {
  const { g } = setup();
  const [r, w] = pipe(g);
  assert.deepEqual([r, w], [4, 5]);
  const rs = g.fdstat(r);
  assert.equal(rs.filetype, Filetype.SOCKET_STREAM);
  assert.equal(g.fdstat(w).filetype, Filetype.SOCKET_STREAM);
  assert.equal(g.seek(r, 0n, Whence.CUR).errno, Errno.SPIPE);
  assert.equal(g.seek(w, 1n, Whence.SET).errno, Errno.SPIPE);
  assert.equal(g.tell(r).errno, Errno.SPIPE);
  assert.equal(g.write(r, 'x').errno, Errno.BADF);
  assert.equal(g.read(w, 1).errno, Errno.BADF);
  const st = g.alloc(64);
  assert.equal(g.call('fd_filestat_get', r, st), Errno.SUCCESS);
  assert.equal(g.filestat(st).filetype, Filetype.SOCKET_STREAM);
  // A pipe is not a socket to the sock_* calls.
  const iov = g.iovecs(['x']);
  assert.equal(g.call('sock_send', w, iov.ptr, 1, 0, g.alloc(4)), Errno.NOTSOCK);
  assert.equal(g.call('sock_shutdown', w, 2), Errno.NOTSOCK);
  assert.equal(g.posix('fd_pipe', g.memory.buffer.byteLength - 4), Errno.FAULT);
  assert.deepEqual(pipe(g), [6, 7]);
});

test('a guest blocked on an empty pipe read is woken by a write, and one blocked on a full pipe by a read', async () => {
  const blocker = new RecordingBlocker();
  const { g } = setup(blocker);
  const [r, w] = pipe(g);
  assert.equal(g.read(r, 10).errno, RecordingBlocker.SUSPENDED);
  // While the guest is suspended, something else (here the test) writes.
  const woken = blocker.resume();
  assert.deepEqual(g.write(w, 'wake up'), { errno: 0, n: 7 });
  await woken;
  assert.deepEqual(g.read(r, 10), { errno: 0, data: 'wake up' });

  const big = 'x'.repeat(PIPE_CAPACITY - 100);
  assert.deepEqual(g.write(w, big), { errno: 0, n: PIPE_CAPACITY - 100 });
  // Only 100 bytes free: a 1000-byte write (<= PIPE_BUF) goes in whole or waits.
  assert.equal(g.write(w, 'y'.repeat(1000)).errno, RecordingBlocker.SUSPENDED);
  const drained = blocker.resume();
  assert.equal(g.read(r, 4096).data.length, 4096);
  await drained;
  assert.deepEqual(g.write(w, 'y'.repeat(1000)), { errno: 0, n: 1000 });
  // A large write takes what fits.
  assert.deepEqual(g.write(w, 'z'.repeat(10_000)), { errno: 0, n: 4096 - 1000 + 100 });
  assert.equal(g.write(w, 'z').errno, RecordingBlocker.SUSPENDED);
  // The reader goes away: the waiting writer wakes to EPIPE.
  const gone = blocker.resume();
  assert.equal(g.call('fd_close', r), Errno.SUCCESS);
  await gone;
  assert.equal(g.write(w, 'z').errno, Errno.PIPE);
});

test('a blocked reader wakes to EOF when the last write end closes', async () => {
  const blocker = new RecordingBlocker();
  const { g } = setup(blocker);
  const [r, w] = pipe(g);
  const w2 = dup(g, w).fd;
  assert.equal(g.read(r, 10).errno, RecordingBlocker.SUSPENDED);
  const woken = blocker.resume();
  assert.equal(g.call('fd_close', w), Errno.SUCCESS);
  assert.equal(g.call('fd_close', w2), Errno.SUCCESS);
  await woken;
  assert.deepEqual(g.read(r, 10), { errno: 0, data: '' });
});

test('capture → restore: a dup shares the offset again, pipes keep their bytes and their linking', () => {
  const { g, dir } = setup();
  const f = g.openOk(3, 'data.txt');
  const d = dup(g, f).fd;
  assert.equal(g.posix('fd_dup2', 3, 20), Errno.SUCCESS);
  assert.equal(g.posix('fd_dup2', 1, 21), Errno.SUCCESS);
  g.read(f, 3);
  const [r, w] = pipe(g);
  g.write(w, 'unread data');
  const [r2, w2] = pipe(g);
  g.write(w2, 'then EOF');
  g.call('fd_close', w2);
  const state = viaJson(g.host.capture());
  assert.equal(state.version, 3);
  assert.deepEqual(
    state.fds.map((s) => [s.fd, s.kind, s.kind === 'dup' ? s.of : s.kind === 'pipe' ? `${s.pipe} ${s.end}` : '']),
    [
      [0, 'stdio', ''],
      [1, 'stdio', ''],
      [2, 'stdio', ''],
      [3, 'directory', ''],
      [f, 'file', ''],
      [d, 'dup', f],
      [r, 'pipe', '0 read'],
      [w, 'pipe', '0 write'],
      [r2, 'pipe', '1 read'],
      [20, 'dup', 3],
      [21, 'dup', 1],
    ],
  );
  const restored = new Guest(WasiHost.restore(state, { preopens: [{ guestPath: '/data', hostPath: dir }] }));
  assert.deepEqual(restored.read(d, 3), { errno: 0, data: 'def' });
  assert.deepEqual(restored.read(f, 3), { errno: 0, data: 'ghi' });
  assert.deepEqual(restored.read(r, 100), { errno: 0, data: 'unread data' });
  assert.deepEqual(restored.write(w, 'more'), { errno: 0, n: 4 });
  assert.deepEqual(restored.read(r, 100), { errno: 0, data: 'more' });
  assert.deepEqual(restored.read(r2, 100), { errno: 0, data: 'then EOF' });
  assert.deepEqual(restored.read(r2, 100), { errno: 0, data: '' });
  // The restored preopen alias is the same directory; closing fd 3 leaves fd 20 working.
  assert.equal(restored.call('fd_close', 3), Errno.SUCCESS);
  assert.equal(restored.openOk(20, 'data.txt') >= 0, true);
  // A new pipe does not reuse a restored pipe's id.
  restored.posix('fd_pipe', restored.alloc(8));
  const ids = restored.host.capture().fds.flatMap((s) => (s.kind === 'pipe' ? [s.pipe] : []));
  assert.deepEqual(ids, [0, 0, 1, 2, 2]);
  // The source host is unaffected.
  assert.deepEqual(g.read(r, 100), { errno: 0, data: 'unread data' });
});

test('restore refuses a dup of an fd the state does not describe', () => {
  const state = Guest.create().host.capture();
  assert.throws(() => WasiHost.restore({ ...state, fds: [...state.fds, { fd: 7, kind: 'dup', of: 5 }] }), {
    code: 'ROAM_WASI_SETUP',
    message: /fd 7 shares fd 5, which the state does not describe/,
  });
  assert.throws(
    () =>
      WasiHost.restore({
        ...state,
        fds: [...state.fds, { fd: 7, kind: 'dup', of: 1 }, { fd: 8, kind: 'dup', of: 7 }],
      }),
    { code: 'ROAM_WASI_SETUP', message: /fd 8 shares fd 7/ },
  );
});

test('a state of the previous version is refused', () => {
  const state = { ...Guest.create().host.capture(), version: 1 } as unknown as WasiHostState;
  assert.throws(() => WasiHost.restore(state), { code: 'ROAM_WASI_SETUP', message: /unsupported state version 1/ });
});

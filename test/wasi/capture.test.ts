import assert from 'node:assert/strict';
import {
  closeSync,
  cpSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ClockSource } from '../../src/wasi/clock.js';
import { Clockid, Errno, Fdflags, Oflags, Rights } from '../../src/wasi/constants.js';
import { SockOpt } from '../../src/wasi/descriptors/socket.js';
import { WasiHost, type WasiHostState } from '../../src/wasi/host.js';
import { AddressFamily } from '../../src/wasi/loopback.js';
import { fifo, Guest, READ_RIGHTS, RecordingBlocker, Sockets, tempDir } from './helpers.js';

/** What an image does to the state: it must survive JSON untouched. */
function viaJson(state: WasiHostState): WasiHostState {
  const json = JSON.stringify(state);
  const back = JSON.parse(json) as WasiHostState;
  assert.deepEqual(back, state, 'the state is plain JSON data');
  return back;
}

function setup(): { g: Guest; dir: string } {
  const dir = tempDir();
  writeFileSync(join(dir, 'data.txt'), 'abcdefghijklmnopqrstuvwxyz');
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'inner.txt'), 'inner');
  const g = Guest.create({
    args: ['prog', 'x'],
    env: { HOME: '/home' },
    preopens: [{ guestPath: '/data', hostPath: dir }],
  });
  return { g, dir };
}

test('an open file continues at its offset, with its fd number, rights and flags', () => {
  const { g, dir } = setup();
  const f = g.openOk(3, 'data.txt', { rights: READ_RIGHTS, fdflags: Fdflags.NONBLOCK });
  const moved = g.openOk(3, 'sub/inner.txt');
  // Move the file to fd 5, leaving a hole at 4: numbers must be kept exactly.
  assert.equal(g.call('fd_renumber', f, moved), Errno.SUCCESS);
  assert.deepEqual(g.read(moved, 5), { errno: 0, data: 'abcde' });
  const before = g.fdstat(moved);
  const state = viaJson(g.host.capture());
  assert.deepEqual(
    state.fds.map((s) => [s.fd, s.kind]),
    [
      [0, 'stdio'],
      [1, 'stdio'],
      [2, 'stdio'],
      [3, 'directory'],
      [moved, 'file'],
    ],
  );
  const restored = new Guest(WasiHost.restore(state, { preopens: [{ guestPath: '/data', hostPath: dir }] }));
  assert.deepEqual(restored.read(moved, 5), { errno: 0, data: 'fghij' });
  assert.deepEqual(restored.fdstat(moved), before);
  assert.equal(restored.write(moved, 'x').errno, Errno.BADF);
  // The original host is unaffected and keeps its own offset.
  assert.deepEqual(g.read(moved, 2), { errno: 0, data: 'fg' });
});

test('args, env, preopens and directory fds carry over', () => {
  const { g, dir } = setup();
  const sub = g.openDir(3, 'sub');
  const state = viaJson(g.host.capture());
  const r = new Guest(WasiHost.restore(state, { preopens: [{ guestPath: '/data', hostPath: dir }] }));
  const count = r.alloc(4);
  const size = r.alloc(4);
  r.call('args_sizes_get', count, size);
  assert.deepEqual([r.u32(count), r.u32(size)], [2, 7]);
  r.call('environ_sizes_get', count, size);
  assert.deepEqual([r.u32(count), r.u32(size)], [1, 11]);
  const name = r.alloc(5);
  assert.equal(r.call('fd_prestat_dir_name', 3, name, 5), Errno.SUCCESS);
  assert.equal(r.bytes(name, 5).toString(), '/data');
  assert.equal(r.call('fd_prestat_get', sub, r.alloc(8)), Errno.BADF);
  assert.deepEqual(r.read(r.openOk(sub, 'inner.txt'), 10), { errno: 0, data: 'inner' });
  // The sandbox still holds from the restored subdirectory.
  assert.equal(r.open(sub, '../../etc/passwd').errno, Errno.NOTCAPABLE);
});

test('restore with a remapped preopen reads the new host directory', () => {
  const { g, dir } = setup();
  const f = g.openOk(3, 'sub/inner.txt');
  g.read(f, 2);
  const state = viaJson(g.host.capture());
  const copy = join(tempDir(), 'elsewhere');
  cpSync(dir, copy, { recursive: true });
  writeFileSync(join(copy, 'sub', 'inner.txt'), 'INNER-COPY');
  const r = new Guest(WasiHost.restore(state, { preopens: [{ guestPath: '/data', hostPath: copy }] }));
  assert.deepEqual(r.read(f, 100), { errno: 0, data: 'NER-COPY' });
  r.create(3, 'new.txt', 'written');
  assert.equal(readFileSync(join(copy, 'new.txt'), 'utf8'), 'written');
});

test('restore without a needed preopen is a clear error', () => {
  const { g } = setup();
  g.openOk(3, 'data.txt');
  const state = viaJson(g.host.capture());
  assert.throws(() => WasiHost.restore(state, { preopens: [{ guestPath: '/other', hostPath: tempDir() }] }), {
    code: 'ROAM_WASI_SETUP',
    message: /fd 3 \(directory "\/data"\) needs preopen "\/data", which was not given/,
  });
});

test('a preopen the guest closed is not needed on restore', () => {
  const { g } = setup();
  g.call('fd_close', 3);
  const r = WasiHost.restore(viaJson(g.host.capture()));
  assert.deepEqual(
    r.capture().fds.map((s) => s.fd),
    [0, 1, 2],
  );
});

test('restore of a file that disappeared names the guest path, and leaks nothing', () => {
  const { g, dir } = setup();
  g.openDir(3, 'sub');
  g.openOk(3, 'sub/inner.txt');
  const state = viaJson(g.host.capture());
  rmSync(join(dir, 'sub', 'inner.txt'));
  assert.throws(() => WasiHost.restore(state, { preopens: [{ guestPath: '/data', hostPath: dir }] }), {
    code: 'ROAM_WASI_SETUP',
    message: /fd 5, file "\/data\/sub\/inner.txt".*ENOENT/,
  });
});

test('restore never creates or truncates', () => {
  const { g, dir } = setup();
  const f = g.openOk(3, 'fresh.txt', { oflags: Oflags.CREAT | Oflags.TRUNC | Oflags.EXCL });
  g.write(f, 'keep me');
  const state = viaJson(g.host.capture());
  WasiHost.restore(state, { preopens: [{ guestPath: '/data', hostPath: dir }] });
  assert.equal(readFileSync(join(dir, 'fresh.txt'), 'utf8'), 'keep me');
});

test('a file removed while open moves with its bytes and stays nameless (ghost)', () => {
  const { g, dir } = setup();
  const f = g.openOk(3, 'etilqs_1', { oflags: Oflags.CREAT | Oflags.EXCL });
  g.write(f, 'statement journal');
  rmSync(join(dir, 'etilqs_1')); // what SQLite does with a temporary file right after opening it
  g.seek(f, 0n, 0);
  g.read(f, 10);
  const state = viaJson(g.host.capture());
  const elsewhere = tempDir();
  const r = new Guest(WasiHost.restore(state, { preopens: [{ guestPath: '/data', hostPath: elsewhere }] }));
  assert.deepEqual(r.read(f, 100), { errno: 0, data: 'journal' });
  assert.equal(r.write(f, '+more').errno, Errno.SUCCESS);
  assert.deepEqual(readdirSync(elsewhere), [], 'the restored file has no name either');
  // A second capture carries the bytes written since.
  const again = new Guest(
    WasiHost.restore(viaJson(r.host.capture()), { preopens: [{ guestPath: '/data', hostPath: dir }] }),
  );
  again.seek(f, 0n, 0);
  assert.deepEqual(again.read(f, 100), { errno: 0, data: 'statement journal+more' });
});

test('monotonic and CPU clocks never go backwards across a restore', () => {
  let sourceMono = 5_000_000_000n;
  const clockA: ClockSource = { realtime: () => 0n, monotonic: () => sourceMono, cputime: () => 777n };
  const g = Guest.create({ clock: clockA });
  const out = g.alloc(8);
  g.call('clock_time_get', Clockid.MONOTONIC, 0n, out);
  assert.equal(g.u64(out), 5_000_000_000n);
  const state = viaJson(g.host.capture());
  // The destination's clock started recently: its raw monotonic value is far smaller.
  let destMono = 10n;
  const clockB: ClockSource = { realtime: () => 0n, monotonic: () => destMono, cputime: () => 1n };
  const r = new Guest(WasiHost.restore(state, { clock: clockB }));
  const o = r.alloc(8);
  r.call('clock_time_get', Clockid.MONOTONIC, 0n, o);
  assert.equal(r.u64(o), 5_000_000_000n);
  destMono += 25n;
  r.call('clock_time_get', Clockid.MONOTONIC, 0n, o);
  assert.equal(r.u64(o), 5_000_000_025n);
  r.call('clock_time_get', Clockid.PROCESS_CPUTIME_ID, 0n, o);
  assert.equal(r.u64(o), 777n);
  sourceMono = 0n;
  // With the real clocks, too.
  const real = Guest.create();
  real.call('clock_time_get', Clockid.MONOTONIC, 0n, out);
  const t0 = real.u64(out);
  const again = new Guest(WasiHost.restore(viaJson(real.host.capture())));
  again.call('clock_time_get', Clockid.MONOTONIC, 0n, o);
  assert.ok(again.u64(o) >= t0);
});

test('a readdir iteration continues after restore from the same snapshot', () => {
  const { g, dir } = setup();
  const first = g.readdir(3, 4096);
  assert.deepEqual(
    first.entries.map((e) => e.name),
    ['.', '..', 'data.txt', 'sub'],
  );
  const state = viaJson(g.host.capture());
  writeFileSync(join(dir, 'b-added-later'), '');
  const r = new Guest(WasiHost.restore(state, { preopens: [{ guestPath: '/data', hostPath: dir }] }));
  assert.deepEqual(
    r.readdir(3, 4096, 2n).entries.map((e) => e.name),
    ['data.txt', 'sub'],
  );
  assert.deepEqual(r.listDir(3), ['.', '..', 'b-added-later', 'data.txt', 'sub']);
});

test("stdin's buffered bytes and pending EOF move with the state", async () => {
  const p = await fifo();
  const blocker = new RecordingBlocker();
  const g = Guest.create({ stdin: p.r, blocker });
  g.read(0, 1);
  writeSync(p.w, 'buffered input');
  await blocker.resume();
  assert.deepEqual(g.read(0, 9), { errno: 0, data: 'buffered ' });
  const state = viaJson(g.host.capture());
  closeSync(p.w);
  // The new host's own stdin is empty; the guest first sees what the old one had buffered.
  const r = new Guest(WasiHost.restore(state, { stdin: openSync('/dev/null', 'r') }));
  assert.deepEqual(r.read(0, 100), { errno: 0, data: 'input' });
  assert.deepEqual(r.read(0, 100), { errno: 0, data: '' });
});

test('stdio rebinds to the new host fds; renumbered stdio keeps its stream', () => {
  const dir = tempDir();
  const g = Guest.create({ stdout: openSync(join(dir, 'a'), 'w') });
  assert.equal(g.call('fd_renumber', 1, 2), Errno.SUCCESS);
  const state = viaJson(g.host.capture());
  assert.deepEqual(
    state.fds.map((s) => [s.fd, s.kind === 'stdio' ? s.stream : s.kind]),
    [
      [0, 'stdin'],
      [2, 'stdout'],
    ],
  );
  const out = openSync(join(dir, 'b'), 'w');
  const r = new Guest(WasiHost.restore(state, { stdout: out }));
  r.write(2, 'to b');
  assert.equal(readFileSync(join(dir, 'b'), 'utf8'), 'to b');
  assert.equal(readFileSync(join(dir, 'a'), 'utf8'), '');
});

test('narrowed rights survive and are not widened by restore', () => {
  const { g, dir } = setup();
  const f = g.openOk(3, 'data.txt');
  g.call('fd_fdstat_set_rights', f, Rights.FD_READ, 0n);
  const r = new Guest(
    WasiHost.restore(viaJson(g.host.capture()), { preopens: [{ guestPath: '/data', hostPath: dir }] }),
  );
  assert.equal(r.fdstat(f).base, Rights.FD_READ);
  assert.equal(r.write(f, 'x').errno, Errno.BADF);
  assert.equal(r.call('fd_fdstat_set_rights', f, Rights.FD_READ | Rights.FD_WRITE, 0n), Errno.NOTCAPABLE);
});

test('an unknown state version is refused', () => {
  const state = { ...Guest.create().host.capture(), version: 99 } as unknown as WasiHostState;
  assert.throws(() => WasiHost.restore(state), { code: 'ROAM_WASI_SETUP', message: /unsupported state version 99/ });
});

test("the guest's own sockets: each kind, its flags and options, and the connections' bytes", () => {
  const { g, dir } = setup();
  const s = new Sockets(g);
  const fresh = s.open(AddressFamily.INET6, Fdflags.NONBLOCK);
  const [l, c, a] = s.connected(9000);
  assert.equal(g.posix('sock_setopt', l, SockOpt.KEEPALIVE, 1), Errno.SUCCESS);
  g.write(c, 'in flight');
  const state = viaJson(g.host.capture());
  assert.deepEqual(
    state.fds.filter((f) => f.fd > 3).map((f) => f.kind),
    ['inet', 'listener', 'stream', 'stream'],
  );
  const r = new Sockets(new Guest(WasiHost.restore(state, { preopens: [{ guestPath: '/data', hostPath: dir }] })));
  const again = r.g.host.capture();
  assert.deepEqual(
    [again.fds, again.loopback],
    [state.fds, state.loopback],
    'a restored host captures the same sockets',
  );
  assert.equal(r.g.fdstat(fresh).flags, Fdflags.NONBLOCK);
  assert.equal(r.getopt(fresh, SockOpt.DOMAIN).value, AddressFamily.INET6);
  assert.equal(r.getopt(l, SockOpt.KEEPALIVE).value, 1);
  assert.deepEqual(r.g.read(a, 100), { errno: 0, data: 'in flight' });
  assert.deepEqual(r.name(c, 1), s.name(c, 1));
});

/**
 * The guest's own sockets as state machines, driven through the roam_posix and WASI imports
 * in memory (no module, no network): socket -> bind -> listen / connect, in-container stream
 * pairs, options, addresses, blocking, capture and restore.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Errno, Fdflags } from '../../src/wasi/constants.js';
import { SockOpt } from '../../src/wasi/descriptors/socket.js';
import { WasiHost, type WasiHostState } from '../../src/wasi/host.js';
import { AddressFamily, STREAM_CAPACITY } from '../../src/wasi/loopback.js';
import { Guest, RecordingBlocker, Sockets } from '../wasi/helpers.js';

const { INET, INET6, UNIX } = AddressFamily;

const setup = (blocker?: RecordingBlocker) => new Sockets(Guest.create(blocker ? { blocker } : {}));

function viaJson(state: WasiHostState): WasiHostState {
  const back = JSON.parse(JSON.stringify(state)) as WasiHostState;
  assert.deepEqual(back, state, 'the state is plain JSON data');
  return back;
}

test('socket -> bind -> listen -> accept; connect over loopback; bytes both ways; names', () => {
  const s = setup();
  const l = s.open();
  assert.equal(l, 3);
  assert.deepEqual(s.name(l), { errno: 0, family: INET, port: 0, addr: '0.0.0.0' });
  assert.equal(s.bind(l, INET, '0.0.0.0', 6000), Errno.SUCCESS);
  assert.equal(s.bind(l, INET, '0.0.0.0', 6001), Errno.INVAL, 'bound once');
  assert.equal(s.listen(l), Errno.SUCCESS);
  assert.equal(s.getopt(l, SockOpt.ACCEPTCONN).value, 1);
  // Nothing to accept: with no gateway and a plain module, a wait only the guest could end.
  assert.equal(s.accept(l).errno, Errno.DEADLK);
  assert.equal(s.accept(l, Fdflags.NONBLOCK).errno, Errno.DEADLK, 'the flag of accept is for the new fd');
  const c = s.open();
  assert.equal(s.connect(c, INET, '127.0.0.1', 6000), Errno.SUCCESS);
  const client = s.name(c);
  assert.equal(client.addr, '127.0.0.1');
  assert.ok(client.port >= 32768);
  assert.deepEqual(s.name(c, 1), { errno: 0, family: INET, port: 6000, addr: '127.0.0.1' });
  const a = s.accept(l, Fdflags.NONBLOCK);
  assert.equal(a.errno, Errno.SUCCESS);
  assert.equal(s.g.fdstat(a.fd).flags, Fdflags.NONBLOCK);
  assert.deepEqual(s.name(a.fd, 1), client);
  assert.deepEqual(s.name(a.fd), { errno: 0, family: INET, port: 6000, addr: '127.0.0.1' });
  assert.deepEqual(s.g.write(c, 'hello ', 'server'), { errno: 0, n: 12 });
  assert.deepEqual(s.g.read(a.fd, 5, 100), { errno: 0, data: 'hello server' });
  assert.equal(s.g.read(a.fd, 10).errno, Errno.AGAIN);
  assert.deepEqual(s.g.write(a.fd, 'hi'), { errno: 0, n: 2 });
  assert.deepEqual(s.g.read(c, 10), { errno: 0, data: 'hi' });
  // The server closes: the client reads EOF, and its writes fail.
  assert.equal(s.g.call('fd_close', a.fd), Errno.SUCCESS);
  assert.deepEqual(s.g.read(c, 10), { errno: 0, data: '' });
  assert.equal(s.g.write(c, 'x').errno, Errno.PIPE);
});

test('ports: EADDRINUSE, IPv6 with and without V6ONLY, ephemeral ports, freed on close; connect errors', () => {
  const s = setup();
  const a = s.open();
  assert.equal(s.bind(a, INET, '127.0.0.1', 7000), Errno.SUCCESS);
  const b = s.open();
  assert.equal(s.bind(b, INET, '0.0.0.0', 7000), Errno.ADDRINUSE);
  assert.equal(s.bind(b, INET, '10.0.0.1', 7001), Errno.ADDRNOTAVAIL, 'not an address of the container');
  assert.equal(s.bind(b, INET6, '0:0:0:0:0:0:0:1', 7001), Errno.AFNOSUPPORT, 'family of the socket');
  const six = s.open(INET6);
  assert.equal(s.bind(six, INET6, '0:0:0:0:0:0:0:0', 7000), Errno.ADDRINUSE, ':: takes the IPv4 port too');
  assert.equal(s.g.posix('sock_setopt', six, SockOpt.V6ONLY, 1), Errno.SUCCESS);
  assert.equal(s.bind(six, INET6, '0:0:0:0:0:0:0:0', 7000), Errno.SUCCESS);
  assert.equal(s.g.call('fd_close', a), Errno.SUCCESS);
  assert.equal(s.bind(b, INET, '0.0.0.0', 7000), Errno.SUCCESS, 'free again');
  // Port 0: an ephemeral port, a different one each time.
  const e1 = s.open();
  const e2 = s.open();
  s.bind(e1, INET, '0.0.0.0', 0);
  s.bind(e2, INET, '0.0.0.0', 0);
  assert.notEqual(s.name(e1).port, s.name(e2).port);
  const c = s.open();
  assert.equal(s.connect(c, INET, '127.0.0.1', 7000), Errno.CONNREFUSED, 'bound but not listening');
  assert.equal(s.connect(c, INET, '192.0.2.1', 80), Errno.NETUNREACH);
  assert.equal(s.g.posix('sock_open', UNIX, 0, s.g.alloc(4)), Errno.AFNOSUPPORT);
  assert.equal(s.g.posix('sock_listen', 0, 1), Errno.NOTSOCK);
  assert.equal(s.g.posix('sock_listen', 99, 1), Errno.BADF);
  assert.equal(s.g.read(c, 1).errno, Errno.NOTCONN);
  // ::1 reaches a listener on [::]; 127.0.0.1 does not reach a V6ONLY one.
  assert.equal(s.listen(six), Errno.SUCCESS);
  const c6 = s.open(INET6);
  assert.equal(s.connect(c6, INET6, '0:0:0:0:0:0:0:1', 7000), Errno.SUCCESS);
  assert.equal(s.name(s.accept(six).fd, 1).addr, '0:0:0:0:0:0:0:1');
});

test('options: defaults, set and read back, Linux doubling of buffer sizes, ENOPROTOOPT', () => {
  const s = setup();
  const fd = s.open();
  assert.deepEqual(s.getopt(fd, SockOpt.TYPE), { errno: 0, value: 6 });
  assert.deepEqual(s.getopt(fd, SockOpt.DOMAIN), { errno: 0, value: INET });
  assert.deepEqual(s.getopt(fd, SockOpt.NODELAY), { errno: 0, value: 0 });
  assert.deepEqual(s.getopt(fd, SockOpt.LINGER), { errno: 0, value: -1 });
  for (const [option, value, back] of [
    [SockOpt.NODELAY, 5, 1],
    [SockOpt.REUSEADDR, 1, 1],
    [SockOpt.KEEPALIVE, 1, 1],
    [SockOpt.SNDBUF, 100_000, 200_000],
    [SockOpt.RCVBUF, 10, 2304],
    [SockOpt.LINGER, 3, 3],
    [SockOpt.KEEPIDLE, 60, 60],
    [SockOpt.RCVTIMEO, 1500, 1500],
  ] as const) {
    assert.equal(s.g.posix('sock_setopt', fd, option, value), Errno.SUCCESS);
    assert.deepEqual(s.getopt(fd, option), { errno: 0, value: back });
  }
  assert.equal(s.g.posix('sock_setopt', fd, SockOpt.KEEPCNT, 0), Errno.INVAL);
  assert.equal(s.getopt(fd, SockOpt.V6ONLY).errno, Errno.NOPROTOOPT, 'IPv6 only');
  assert.equal(s.getopt(fd, 0).errno, Errno.NOPROTOOPT);
  assert.equal(s.g.posix('sock_setopt', fd, SockOpt.TYPE, 1), Errno.NOPROTOOPT);
  // The options go with the socket when it listens, and to what it accepts.
  s.bind(fd, INET, '127.0.0.1', 7100);
  s.listen(fd);
  const c = s.open();
  s.connect(c, INET, '127.0.0.1', 7100);
  assert.equal(s.getopt(s.accept(fd).fd, SockOpt.NODELAY).value, 1);
});

test('dup: every fd of a socket follows it through listen and connect', () => {
  const s = setup();
  const fd = s.open();
  const out = s.g.alloc(4);
  assert.equal(s.g.posix('fd_dup', fd, 10, out), Errno.SUCCESS);
  const copy = s.g.u32(out);
  assert.equal(s.bind(copy, INET, '127.0.0.1', 7200), Errno.SUCCESS);
  assert.equal(s.listen(fd), Errno.SUCCESS);
  assert.equal(s.getopt(copy, SockOpt.ACCEPTCONN).value, 1);
  const c = s.open();
  assert.equal(s.connect(c, INET, '127.0.0.1', 7200), Errno.SUCCESS);
  assert.equal(s.accept(copy).errno, Errno.SUCCESS);
  // Closing one fd keeps the listener; the last one frees the port.
  assert.equal(s.g.call('fd_close', fd), Errno.SUCCESS);
  const c2 = s.open();
  assert.equal(s.connect(c2, INET, '127.0.0.1', 7200), Errno.SUCCESS);
  assert.equal(s.g.call('fd_close', copy), Errno.SUCCESS);
  assert.deepEqual(s.g.read(c2, 5), { errno: 0, data: '' }, 'a connection never accepted ends');
  const again = s.open();
  assert.equal(s.bind(again, INET, '127.0.0.1', 7200), Errno.SUCCESS);
});

test('blocking: accept, read and a write to a full stream suspend and wake; shutdown gives EOF', async () => {
  const blocker = new RecordingBlocker();
  const s = setup(blocker);
  const l = s.open();
  s.bind(l, INET, '127.0.0.1', 7300);
  s.listen(l);
  assert.equal(s.accept(l).errno, RecordingBlocker.SUSPENDED);
  const woken = blocker.resume();
  const c = s.open();
  assert.equal(s.connect(c, INET, '127.0.0.1', 7300), Errno.SUCCESS);
  await woken;
  const a = s.accept(l).fd;
  assert.equal(s.g.read(a, 10).errno, RecordingBlocker.SUSPENDED);
  const readable = blocker.resume();
  s.g.write(c, 'wake');
  await readable;
  assert.deepEqual(s.g.read(a, 10), { errno: 0, data: 'wake' });
  // A full direction: the writer waits until the reader takes some.
  const chunk = 'x'.repeat(STREAM_CAPACITY / 8);
  for (let i = 0; i < 8; i++) assert.deepEqual(s.g.write(c, chunk), { errno: 0, n: chunk.length });
  assert.equal(s.g.write(c, 'y').errno, RecordingBlocker.SUSPENDED);
  const room = blocker.resume();
  assert.equal(s.g.read(a, 1000).data.length, 1000);
  await room;
  assert.deepEqual(s.g.write(c, 'y'.repeat(2000)), { errno: 0, n: 1000 });
  assert.equal(s.g.call('sock_shutdown', c, 2), Errno.SUCCESS);
  assert.equal(s.g.write(c, 'z').errno, Errno.PIPE);
  let total = 0;
  for (;;) {
    const r = s.g.read(a, 32768);
    assert.equal(r.errno, 0);
    if (r.data === '') break;
    total += r.data.length;
  }
  assert.equal(total, STREAM_CAPACITY);
});

test('socketpair: two connected AF_UNIX ends', () => {
  const s = setup();
  const out = s.g.alloc(8);
  assert.equal(s.g.posix('sock_pair', out), Errno.SUCCESS);
  const [x, y] = [s.g.u32(out), s.g.u32(out + 4)];
  s.g.write(x, 'one');
  s.g.write(y, 'two');
  assert.deepEqual([s.g.read(y, 9).data, s.g.read(x, 9).data], ['one', 'two']);
  assert.equal(s.name(x).family, UNIX);
});

test('capture -> restore: listeners, bound sockets, pairs with bytes both ways, a pending connection', () => {
  const s = setup();
  const [l, c, a] = s.connected(7400);
  s.g.write(c, 'to server');
  s.g.write(a, 'to client');
  const pending = s.open();
  s.connect(pending, INET, '127.0.0.1', 7400);
  s.g.write(pending, 'early');
  s.g.call('sock_shutdown', pending, 2);
  const bound = s.open(INET6);
  s.bind(bound, INET6, '0:0:0:0:0:0:0:1', 7500);
  s.g.posix('sock_setopt', c, SockOpt.NODELAY, 1);
  const state = viaJson(s.g.host.capture());
  assert.equal(state.version, 3);
  assert.deepEqual(
    state.fds.slice(3).map((f) => [f.fd, f.kind]),
    [
      [l, 'listener'],
      [c, 'stream'],
      [a, 'stream'],
      [pending, 'stream'],
      [bound, 'inet'],
    ],
  );
  assert.equal(state.loopback?.pairs.length, 2);

  const r = new Sockets(new Guest(WasiHost.restore(state)));
  assert.deepEqual(r.g.read(a, 100), { errno: 0, data: 'to server' });
  assert.deepEqual(r.g.read(c, 100), { errno: 0, data: 'to client' });
  assert.equal(r.getopt(c, SockOpt.NODELAY).value, 1);
  const late = r.accept(l).fd;
  assert.deepEqual(r.g.read(late, 100), { errno: 0, data: 'early' });
  assert.deepEqual(r.g.read(late, 100), { errno: 0, data: '' });
  // Ports are held again: the listener's, the bound socket's, the client's ephemeral one.
  const probe = r.open();
  assert.equal(r.bind(probe, INET, '0.0.0.0', 7400), Errno.ADDRINUSE);
  const probe6 = r.open(INET6);
  assert.equal(r.bind(probe6, INET6, '0:0:0:0:0:0:0:1', 7500), Errno.ADDRINUSE);
  assert.equal(r.bind(probe, INET, '127.0.0.1', r.name(c).port), Errno.ADDRINUSE);
  // New connections and pairs after the restore: new ids.
  const c2 = r.open();
  assert.equal(r.connect(c2, INET, '127.0.0.1', 7400), Errno.SUCCESS);
  const ids = r.g.host.capture().loopback?.pairs.map((p) => p.id);
  assert.deepEqual(ids, [0, 1, 2]);
  // The source is unaffected.
  assert.deepEqual(s.g.read(a, 100), { errno: 0, data: 'to server' });
});

test('restore refuses a socket whose stream pair the state lacks', () => {
  const s = setup();
  s.connected(7600);
  const state = s.g.host.capture();
  assert.throws(() => WasiHost.restore({ ...state, loopback: { pairs: [] } }), {
    code: 'ROAM_WASI_SETUP',
    message: /stream pair 0/,
  });
});

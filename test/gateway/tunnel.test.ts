import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { GatewayClient } from '../../src/gateway/client.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { Errno, Fdflags } from '../../src/wasi/constants.js';
import { Wait } from '../../src/wasi/descriptors/descriptor.js';
import { WasiHost } from '../../src/wasi/host.js';
import { AddressFamily } from '../../src/wasi/loopback.js';
import { type Connection, Network } from '../../src/wasi/network.js';
import { freePort } from '../cluster/cluster.js';
import { Guest, Sockets } from '../wasi/helpers.js';

const token = 'test-token';
let gateway: Gateway;
let addresses: { url: string; tunnel: string };

before(async () => {
  gateway = new Gateway({ host: '127.0.0.1', apiPort: 0, tunnelPort: 0, token });
  addresses = await gateway.listen();
});
after(() => gateway.close());

/** Waits (for real: the network runs on this event loop) until `check` holds. */
async function until<T>(check: () => T | undefined | Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function readAll(c: Connection): string {
  const text = Buffer.concat(c.unread).toString();
  c.unread = [];
  return text;
}

test('a connection moves between two container ends: every byte once, in order, both ways', async () => {
  const port = await freePort();
  await new GatewayClient(addresses.url, token).publish({ hostPort: port, container: 'aaaaaaaaaaaa', port: 80 });
  const options = { gateway: addresses.tunnel, container: 'aaaaaaaaaaaa', token, ports: [80] };
  const source = new Network(options);
  source.touch();

  const client: Socket = connect(port, '127.0.0.1');
  let answers = '';
  let closed = false;
  client.setEncoding('utf8');
  client.on('data', (d: string) => (answers += d));
  client.on('end', () => (closed = true));
  client.write('one ');
  const c = await until(() => source.accept(80), 'the connection at the source');
  assert.equal(await until(() => (c.unread.length ? readAll(c) : undefined), 'input'), 'one ');
  source.send(c, Buffer.from('A'));
  client.write('two ');
  await until(() => c.unread.length > 0, 'more input');

  // The guest stops: its state is captured with "two " unread; later bytes must reach the copy.
  const state = source.capture();
  client.write('three ');
  await new Promise((resolve) => setTimeout(resolve, 100));
  client.end('four');
  await new Promise((resolve) => setTimeout(resolve, 100));

  const destination = new Network(options, JSON.parse(JSON.stringify(state)));
  source.shutdown();
  destination.touch();
  const moved = destination.connection(c.state.conn)!;
  await until(() => moved.state.finReceived, 'the end of the client stream');
  assert.equal(readAll(moved), 'two three four');
  destination.send(moved, Buffer.from('B'));
  destination.close(moved);
  await until(() => closed, 'the client to see the end');
  assert.equal(answers, 'AB', 'output delivered once each (A was sent before the move, B after)');
  assert.ok(destination.changed() instanceof Wait);
});

test('output the gateway never acknowledged is resent by the new end and delivered once', async () => {
  const port = await freePort();
  await new GatewayClient(addresses.url, token).publish({ hostPort: port, container: 'bbbbbbbbbbbb', port: 80 });
  const options = { gateway: addresses.tunnel, container: 'bbbbbbbbbbbb', token, ports: [80] };
  const source = new Network(options);
  source.touch();
  const client = connect(port, '127.0.0.1');
  let answers = '';
  client.setEncoding('utf8');
  client.on('data', (d: string) => (answers += d));
  const c = await until(() => source.accept(80), 'the connection');
  source.send(c, Buffer.from('x'.repeat(1000)));
  // Captured at once: the output may or may not have been acknowledged yet; either way the
  // client must see it exactly once.
  const state = source.capture();
  source.shutdown();
  const destination = new Network(options, state);
  destination.touch();
  destination.send(destination.connection(c.state.conn)!, Buffer.from('y'));
  await until(() => answers.length >= 1001, 'all output');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(answers, `${'x'.repeat(1000)}y`);
  client.destroy();
  destination.shutdown();
});

test('the gateway refuses tunnels with a wrong token and reports its ports', async () => {
  const rogue = new Network({ gateway: addresses.tunnel, container: 'cccccccccccc', token: 'wrong', ports: [] });
  rogue.touch();
  await new Promise((resolve) => setTimeout(resolve, 100));
  const ports = await new GatewayClient(addresses.url, token).ports();
  assert.ok(ports.every((p) => p.container !== 'cccccccccccc'));
  await assert.rejects(new GatewayClient(addresses.url, 'nope').ports(), /missing or wrong token/);
  rogue.shutdown();
});

test('clients of a container that never comes back are closed after the grace period', async () => {
  const short = new Gateway({ host: '127.0.0.1', apiPort: 0, tunnelPort: 0, token, detachedGraceMs: 200 });
  const where = await short.listen();
  try {
    const port = await freePort();
    await new GatewayClient(where.url, token).publish({ hostPort: port, container: 'dddddddddddd', port: 80 });
    const end = new Network({ gateway: where.tunnel, container: 'dddddddddddd', token, ports: [80] });
    end.touch();
    const client = connect(port, '127.0.0.1');
    let ended = false;
    client.on('end', () => (ended = true));
    client.on('error', () => undefined);
    await until(() => end.accept(80), 'the connection');
    end.shutdown(); // the container exits: no tunnel, no re-attach
    await until(() => ended, 'the client to be closed');
    client.destroy();
  } finally {
    short.close();
  }
});

test("a listener the guest makes on a published port takes the gateway's clients; getpeername is the client's address", async () => {
  const port = await freePort();
  await new GatewayClient(addresses.url, token).publish({ hostPort: port, container: 'dddddddddddd', port: 6379 });
  const network = { gateway: addresses.tunnel, container: 'dddddddddddd', token, ports: [6379] };
  const g = new Guest(new WasiHost({ network }));
  const s = new Sockets(g);
  // fd 3 is the listener handed in (LISTEN_FDS); the guest makes its own on the same port.
  const l = s.open(AddressFamily.INET, Fdflags.NONBLOCK);
  assert.equal(l, 4);
  assert.equal(s.bind(l, AddressFamily.INET, '0.0.0.0', 6379), Errno.SUCCESS);
  assert.equal(s.listen(l), Errno.SUCCESS);
  assert.equal(s.accept(l).errno, Errno.AGAIN);

  const client: Socket = connect(port, '127.0.0.1');
  let answers = '';
  client.setEncoding('utf8');
  client.on('data', (d: string) => (answers += d));
  await new Promise((resolve) => client.on('connect', resolve));
  client.write('PING\r\n');
  const accepted = await until(() => {
    const a = s.accept(l);
    return a.errno === Errno.SUCCESS ? a.fd : undefined;
  }, 'the connection at the guest listener');
  assert.deepEqual(s.name(accepted, 1), {
    errno: 0,
    family: AddressFamily.INET,
    port: client.localPort,
    addr: '127.0.0.1',
  });
  assert.equal(s.name(accepted).port, 6379);
  g.call('fd_fdstat_set_flags', accepted, Fdflags.NONBLOCK);
  const input = await until(() => {
    const r = g.read(accepted, 100);
    return r.errno === Errno.SUCCESS && r.data ? r.data : undefined;
  }, 'the client bytes');
  assert.equal(input, 'PING\r\n');
  assert.deepEqual(g.write(accepted, '+PONG\r\n'), { errno: 0, n: 7 });
  await until(() => answers === '+PONG\r\n', 'the answer at the client');
  // A connection from inside the container reaches the same listener, without the gateway.
  const inner = s.open();
  assert.equal(s.connect(inner, AddressFamily.INET, '127.0.0.1', 6379), Errno.SUCCESS);
  assert.equal(s.accept(l).errno, Errno.SUCCESS);
  client.destroy();
  g.host.close();
});

test('outgoing connections of two containers with the same id stay apart; a closed port is refused', async () => {
  const server = createServer((socket) => socket.on('data', (d) => socket.write(`echo ${d}`)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const networks = ['bbbbbbbbbbbb', 'cccccccccccc'].map((container) => {
    const network = new Network({ gateway: addresses.tunnel, container, token, ports: [] });
    network.touch();
    return network;
  });
  try {
    const conns = networks.map((network) => network.connect('127.0.0.1', port));
    assert.equal(conns[0]!.state.conn, conns[1]!.state.conn, 'both containers number their first one alike');
    await until(() => conns.every((c) => c.state.outbound === 'connected'), 'both connected');
    for (const [i, c] of conns.entries()) networks[i]!.send(c, Buffer.from(`from ${i}`));
    for (const [i, c] of conns.entries())
      assert.equal(await until(() => (c.unread.length ? readAll(c) : undefined), `answer ${i}`), `echo from ${i}`);

    const refused = networks[0]!.connect('127.0.0.1', await freePort());
    await until(() => typeof refused.state.outbound === 'object', 'the refusal');
    assert.deepEqual(refused.state.outbound, { failed: 'ECONNREFUSED' });
  } finally {
    for (const network of networks) network.shutdown();
    server.close();
  }
});

test("host names resolve at the gateway's node; an answer lost with a tunnel is asked for again", async () => {
  const network = new Network({ gateway: addresses.tunnel, container: 'namer', token, ports: [] });
  try {
    const localhost = await network.resolve('localhost');
    assert.deepEqual(localhost?.name, 'localhost');
    assert.ok(
      localhost?.addresses?.some((a) => a.family === 4 && a.addr === '127.0.0.1'),
      JSON.stringify(localhost),
    );
    const unknown = await network.resolve('no-such-host.invalid');
    assert.equal(unknown?.addresses, undefined);
    assert.match(unknown?.error ?? '', /^(ENOTFOUND|EAI_AGAIN)$/);
    // The tunnel goes while a name is asked: the caller hears "ask again", and asking again works.
    const asked = network.resolve('localhost');
    network.shutdown();
    assert.equal(await asked, undefined);
    assert.equal((await network.resolve('localhost'))?.name, 'localhost');
  } finally {
    network.shutdown();
  }
});

test('a peer that resets an outgoing connection while the guest moves: the new end has its last bytes, then the reset', async () => {
  let peer: Socket | undefined;
  const server = createServer((socket) => {
    peer = socket;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const options = { gateway: addresses.tunnel, container: 'eeeeeeeeeeee', token, ports: [] };
  const source = new Network(options);
  try {
    const c = source.connect('127.0.0.1', port);
    await until(() => c.state.outbound === 'connected' && peer, 'the connection');
    // The guest stops and moves: meanwhile the server says its last words and resets.
    const state = source.capture();
    source.shutdown();
    peer!.write('bye');
    await new Promise((resolve) => setTimeout(resolve, 100));
    peer!.resetAndDestroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const destination = new Network(options, JSON.parse(JSON.stringify(state)));
    destination.touch();
    const moved = destination.connection(c.state.conn)!;
    await until(() => moved.state.finReceived, 'the end of the stream at the new end');
    assert.equal(readAll(moved), 'bye');
    assert.equal(moved.state.reset, 'pending', 'told as a reset, not a close');
    destination.shutdown();
  } finally {
    source.shutdown();
    server.close();
  }
});

test('a client that writes to a connection the guest closed is reset, as by a kernel; one the guest only shut down is not', async () => {
  const port = await freePort();
  await new GatewayClient(addresses.url, token).publish({ hostPort: port, container: 'abababababab', port: 80 });
  const network = new Network({ gateway: addresses.tunnel, container: 'abababababab', token, ports: [80] });
  network.touch();
  const open = async () => {
    // Half-open, as most clients (Tcl's, C's) are: reading the end does not end its own side.
    const client: Socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const seen = { answer: '', ended: false, closed: false, error: '' };
    client.setEncoding('utf8');
    client.on('data', (d: string) => (seen.answer += d));
    client.on('end', () => (seen.ended = true));
    client.on('error', (e: NodeJS.ErrnoException) => (seen.error = e.code ?? e.message));
    client.on('close', () => (seen.closed = true));
    client.write('hello');
    const c = await until(() => network.accept(80), 'the connection');
    await until(() => c.unread.length > 0, 'its first bytes');
    return { client, seen, c };
  };
  try {
    const closed = await open();
    network.send(closed.c, Buffer.from('-ERR Protocol error\r\n'));
    network.close(closed.c);
    await until(() => closed.seen.ended, 'the end of the stream at the client');
    assert.equal(closed.seen.answer, '-ERR Protocol error\r\n');
    // As Redis's "protocol desync" tests do: write on until a write fails.
    await until(() => {
      if (!closed.seen.error) closed.client.write('more');
      return closed.seen.error || undefined;
    }, 'a write to fail');
    assert.match(closed.seen.error, /^(ECONNRESET|EPIPE)$/);

    const halfClosed = await open();
    network.finish(halfClosed.c);
    await until(() => halfClosed.seen.ended, 'the end of the stream');
    halfClosed.client.write(' more');
    let input = '';
    await until(() => {
      input += readAll(halfClosed.c);
      return input === 'hello more' || undefined;
    }, 'the bytes after');
    assert.equal(halfClosed.seen.closed, false);
    assert.equal(halfClosed.seen.error, '');
    halfClosed.client.destroy();
  } finally {
    network.shutdown();
  }
});

test('an Attach of an older epoch is refused: the newer end keeps its connections, the attach log shows both', async () => {
  const container = 'ffffffffffff';
  const port = await freePort();
  const api = new GatewayClient(addresses.url, token);
  await api.publish({ hostPort: port, container, port: 80 });
  const options = { gateway: addresses.tunnel, container, token, ports: [80] };
  const current = new Network({ ...options, epoch: 2 });
  const stale = new Network({ ...options, epoch: 1 });
  const client = connect(port, '127.0.0.1');
  try {
    current.touch();
    client.write('to the current copy');
    const c = await until(() => current.accept(80), 'the connection at the epoch-2 end');
    assert.equal(await until(() => (c.unread.length ? readAll(c) : undefined), 'input'), 'to the current copy');
    // The copy a migration left behind wakes up and attaches: refused, it never sees the client.
    stale.touch();
    await until(
      async () => (await api.attachments()).some((r) => r.container === container && r.outcome === 'refused'),
      'the refusal',
    );
    let answers = '';
    client.setEncoding('utf8');
    client.on('data', (d: string) => (answers += d));
    client.write(' again');
    assert.equal(await until(() => (c.unread.length ? readAll(c) : undefined), 'more input'), ' again');
    current.send(c, Buffer.from('answer'));
    await until(() => answers === 'answer', 'the answer at the client');
    assert.equal(stale.accept(80), undefined, 'the stale copy never got the connection');
    const records = (await api.attachments()).filter((r) => r.container === container);
    assert.deepEqual(
      records.map(({ epoch, outcome, reason }) => ({ epoch, outcome, reason })),
      [
        { epoch: 2, outcome: 'attached', reason: undefined },
        { epoch: 1, outcome: 'refused', reason: 'stale epoch 1: epoch 2 attached already' },
      ],
    );
    assert.match(records[0]!.remote, /^127\.0\.0\.1:\d+$/);
  } finally {
    client.destroy();
    stale.shutdown();
    current.shutdown();
  }
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { GatewayClient } from '../../src/gateway/client.js';
import { fixtures, roam, sleep, tempDir } from '../helpers.js';
import { freePort, TestCluster } from './cluster.js';

const { dir, cleanup } = tempDir();
after(cleanup);

/** A client of the echo server that sends a line every `everyMs` and checks each answer. */
class LineClient {
  private readonly socket: Socket;
  private received = '';
  sent = 0;
  closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    port: number,
    readonly name: string,
  ) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => (this.received += chunk));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => undefined);
  }

  start(everyMs: number): void {
    this.timer = setInterval(() => this.socket.write(`${this.name} ${++this.sent}\n`), everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  sendRaw(text: string): void {
    this.socket.write(text);
  }

  /** The answers so far: [server-wide line number, text]. */
  answers(): [number, string][] {
    return this.received
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const colon = line.indexOf(': ');
        return [Number(line.slice(0, colon)), line.slice(colon + 2)];
      });
  }

  async settle(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.answers().length < this.sent && Date.now() < deadline) await sleep(50);
  }

  end(): void {
    this.socket.end();
  }
}

test('client connections survive live migrations x64 -> arm64 -> x64: no disconnect, no byte lost, doubled or reordered', {
  timeout: 5 * 60_000,
}, async () => {
  const module = join(dir, 'echo.wasm');
  assert.equal(roam(['build', join(fixtures, 'echo-server.c'), '-O2', '-o', module]).status, 0);
  const cluster = new TestCluster(join(dir, 'cluster'));
  try {
    cluster.up('x64,arm64');
    const port = await freePort();
    const id = cluster.run('x64', ['-p', `${port}:7777`, module]);
    const a = new LineClient(port, 'a');
    a.start(20);
    await sleep(500);
    await cluster.okAsync(['migrate', id, '--to', 'arm64']);
    await sleep(500);
    // b connects while the container moves back: it is served once the move completes.
    const migration = cluster.okAsync(['migrate', id, '--to', 'x64']);
    await sleep(50);
    const b = new LineClient(port, 'b');
    b.start(20);
    await migration;
    await sleep(500);
    a.stop();
    b.stop();
    await a.settle();
    await b.settle();
    for (const client of [a, b]) {
      const answers = client.answers();
      assert.equal(client.closed, false, `${client.name} was never disconnected`);
      assert.deepEqual(
        answers.map(([, text]) => text),
        Array.from({ length: client.sent }, (_, i) => `${client.name} ${i + 1}`),
        `${client.name}: every line answered once, in order`,
      );
    }
    // The server's line counter lives in guest memory: it moved along, every number used once.
    const numbers = [...a.answers(), ...b.answers()].map(([n]) => n).sort((x, y) => x - y);
    assert.deepEqual(
      numbers,
      Array.from({ length: numbers.length }, (_, i) => i + 1),
    );
    assert.equal(cluster.where(id).node, 'x64');
    // Each move raised the epoch, and the gateway attached each copy with its own.
    const { gateway, token } = JSON.parse(readFileSync(join(dir, 'cluster', 'cluster.json'), 'utf8'));
    const attaches = (await new GatewayClient(gateway.url, token).attachments()).filter((r) => r.container === id);
    assert.deepEqual(
      [...new Set(attaches.map((r) => `${r.outcome} ${r.epoch}`))],
      ['attached 1', 'attached 2', 'attached 3'],
    );
    a.end();
    b.end();
  } finally {
    cluster.down();
  }
});

test('a guest that binds the published port itself (socket/bind/listen, IPv4 + IPv6, select) keeps its clients across x64 -> s390x', {
  timeout: 6 * 60_000,
}, async () => {
  const module = join(dir, 'sockets.wasm');
  const built = roam(['build', join(fixtures, 'sockets.c'), '-O2', '-o', module]);
  assert.equal(built.status, 0, built.stderr);
  const cluster = new TestCluster(join(dir, 'cluster-bind'));
  try {
    cluster.up('x64,s390x');
    const port = await freePort();
    const id = cluster.run('x64', ['-p', `${port}:6380`, module, '--', 'serve', '6380']);
    const a = new LineClient(port, 'a');
    a.start(20);
    await sleep(500);
    // The guest connects to itself over loopback inside the container, before and after the move.
    const self = new LineClient(port, 'self');
    self.sendRaw('self\n');
    await cluster.okAsync(['migrate', id, '--to', 's390x']);
    assert.equal(cluster.where(id).node, 's390x');
    self.sendRaw('self\n');
    const b = new LineClient(port, 'b');
    b.start(20);
    await sleep(1500);
    a.stop();
    b.stop();
    await a.settle();
    await b.settle();
    for (const client of [a, b]) {
      assert.equal(client.closed, false, `${client.name} was never disconnected`);
      assert.deepEqual(
        client.answers().map(([, text]) => text),
        Array.from({ length: client.sent }, (_, i) => `${client.name} ${i + 1}`),
        `${client.name}: every line answered once, in order`,
      );
    }
    const deadline = Date.now() + 60_000;
    while (self.answers().length < 2 && Date.now() < deadline) await sleep(100);
    assert.deepEqual(
      self.answers().map(([, text]) => text),
      ['self loopback', 'self loopback'],
    );
    const numbers = [...a.answers(), ...b.answers(), ...self.answers()].map(([n]) => n).sort((x, y) => x - y);
    assert.deepEqual(
      numbers,
      Array.from({ length: numbers.length }, (_, i) => i + 1),
    );
    a.end();
    b.end();
    self.end();
  } finally {
    cluster.down();
  }
});

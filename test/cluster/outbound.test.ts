import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fixtures, roam, skipIfMissing, sleep, tempDir } from '../helpers.js';
import { freePort, TestCluster } from './cluster.js';

// A guest's outgoing connection to a server outside Roam: the gateway holds the real connection,
// so the server sees one client whatever node the guest runs on.
const { dir, cleanup } = tempDir();
after(cleanup);
/** The server's address: one of this machine's own, not loopback (127.0.0.0/8 is the container's). */
const serverAddress = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
const skip = skipIfMissing(!serverAddress && 'this machine has no IPv4 address besides loopback');

/** Answers each line "n" with "n n*n", and records every connection and every number it got. */
class SquareServer {
  readonly server: Server;
  readonly connections: Socket[] = [];
  readonly received: number[] = [];

  constructor() {
    this.server = createServer((socket) => {
      this.connections.push(socket);
      let buffered = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        buffered += chunk;
        let newline = buffered.indexOf('\n');
        while (newline >= 0) {
          const n = Number(buffered.slice(0, newline));
          buffered = buffered.slice(newline + 1);
          this.received.push(n);
          socket.write(`${n} ${n * n}\n`);
          newline = buffered.indexOf('\n');
        }
      });
      socket.on('error', () => undefined);
    });
  }

  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(port, serverAddress, resolve));
  }

  close(): void {
    for (const socket of this.connections) socket.destroy();
    this.server.close();
  }
}

test('an outgoing connection stays one connection to its server while the guest moves x64 -> arm64 -> x64', {
  skip,
  timeout: 10 * 60_000,
}, async () => {
  const module = join(dir, 'outbound.roam.wasm');
  const built = roam(['build', join(fixtures, 'outbound.c'), '-O2', '-o', module]);
  assert.equal(built.status, 0, built.stderr);
  const server = new SquareServer();
  const port = await freePort();
  await server.listen(port);
  const cluster = new TestCluster(join(dir, 'cluster'));
  try {
    cluster.up('x64,arm64');
    const count = 3000;
    const id = cluster.run('x64', [module, '--', serverAddress!, String(port), String(count), '5']);
    for (const node of ['arm64', 'x64']) {
      while (server.received.length < (node === 'arm64' ? 50 : 250)) await sleep(50);
      assert.equal(cluster.where(id).status, 'running', `still running before the move to ${node}`);
      await cluster.okAsync(['migrate', id, '--to', node]);
    }
    // The server lives in this process: wait without blocking it (logs -f would, until the guest ends).
    const deadline = Date.now() + 5 * 60_000;
    while (cluster.where(id).status === 'running' && Date.now() < deadline) await sleep(500);
    assert.equal(cluster.where(id).status, 'exited');
    const log = cluster.ok(['logs', id]);
    const expected = [`connected to port ${port}`];
    for (let n = 100; n <= count; n += 100) expected.push(`${n} exchanges`);
    assert.equal(log, `${[...expected, 'done'].join('\n')}\n`);
    assert.equal(server.connections.length, 1, 'the server saw one connection');
    assert.deepEqual(
      server.received,
      Array.from({ length: count }, (_, i) => i + 1),
      'every number once, in order',
    );
  } finally {
    cluster.down();
    server.close();
  }
});

test('a connect to a port nobody listens on fails with ECONNREFUSED, at once', {
  skip,
  timeout: 5 * 60_000,
}, async () => {
  const module = join(dir, 'outbound.roam.wasm');
  if (!existsSync(module)) assert.equal(roam(['build', join(fixtures, 'outbound.c'), '-O2', '-o', module]).status, 0);
  const cluster = new TestCluster(join(dir, 'cluster-refused'));
  try {
    cluster.up('x64');
    const id = cluster.run('x64', [module, '--', serverAddress!, String(await freePort()), 'refused']);
    assert.equal(cluster.ok(['logs', '-f', id]), 'connect: Connection refused\n');
  } finally {
    cluster.down();
  }
});

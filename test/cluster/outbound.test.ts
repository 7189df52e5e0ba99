import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fixtures, roam, skipIfMissing, sleep, tempDir } from '../helpers.js';
import { buildProgram } from '../programs/programs.js';
import { freePort, TestCluster } from './cluster.js';
import { haveRedisTools } from './redis-server.js';
import { SquareServer, serverAddress } from './square-server.js';

// A guest's outgoing connection to a server outside Roam: the gateway holds the real connection,
// so the server sees one client whatever node the guest runs on.
const { dir, cleanup } = tempDir();
after(cleanup);
const skip = skipIfMissing(!serverAddress && 'this machine has no IPv4 address besides loopback');

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

test('a connect to a closed port fails with ECONNREFUSED, one outside the allow-list with EACCES; names resolve at the gateway', {
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
    const server = new SquareServer();
    const port = await freePort();
    await server.listen(port);
    try {
      const args = [module, '--', serverAddress!, String(port), 'refused'];
      const denied = cluster.run('x64', ['--allow-connect', `${serverAddress}:${port + 1}`, ...args]);
      assert.equal(cluster.ok(['logs', '-f', denied]), 'connect: Permission denied\n');
      assert.equal(server.connections.length, 0, 'nothing reached the server');
      const allowed = cluster.run('x64', ['--allow-connect', `${serverAddress}/32:${port}`, ...args]);
      assert.equal(cluster.ok(['logs', '-f', allowed]), 'connect: succeeded\n');
    } finally {
      server.close();
    }
    // Names resolve as on the gateway's node (this machine): its own name, and one nobody has.
    const name = hostname();
    const resolver = cluster.run('x64', [module, '--', 'resolve', name, 'no-such-host.invalid']);
    const lines = cluster.ok(['logs', '-f', resolver]).split('\n');
    const known = (await lookup(name, { all: true })).map((a) => `${name}: ${a.address}`);
    assert.deepEqual(lines.slice(0, known.length), known);
    assert.match(
      lines[known.length]!,
      /^no-such-host\.invalid: (Name or service not known|Temporary failure in name resolution)$/,
    );
  } finally {
    cluster.down();
  }
});

const haveRedisServer = spawnSync('redis-server', ['--version']).status === 0;
const skipRedis = skipIfMissing(
  skip ||
    (!(haveRedisServer && haveRedisTools) &&
      "Debian's redis-server and redis-tools are not installed (scripts/setup installs them)"),
);

test("Debian's redis-server sees one client, Redis's own redis-cli under Roam, while it moves x64 -> arm64 -> x64", {
  skip: skipRedis,
  timeout: 20 * 60_000,
}, async () => {
  const redisCli = buildProgram('redis', 'redis-cli');
  const port = await freePort();
  const server = spawn(
    'redis-server',
    ['--port', String(port), '--bind', serverAddress!, '--save', '', '--appendonly', 'no', '--protected-mode', 'no'],
    { stdio: 'ignore' },
  );
  const host = (...args: string[]) =>
    spawnSync('redis-cli', ['-h', serverAddress!, '-p', String(port), ...args], { encoding: 'utf8' }).stdout.trim();
  /** The ids of the clients whose last command was INCR: the guest, as the server sees it. */
  const guestIds = () =>
    host('CLIENT', 'LIST')
      .split('\n')
      .filter((line) => / cmd=incr /.test(line))
      .map((line) => /^id=(\d+) /.exec(line)?.[1]);
  const cluster = new TestCluster(join(dir, 'cluster-redis'));
  try {
    for (let i = 0; host('PING') !== 'PONG'; i++) {
      assert.ok(i < 100, 'redis-server answers PING');
      await sleep(100);
    }
    cluster.up('x64,arm64');
    const count = 2000;
    // redis-cli -r N -i S: one connection, N commands, S seconds apart; each reply on a line.
    const id = cluster.run('x64', [
      redisCli.migratable,
      '--',
      '-h',
      serverAddress!,
      '-p',
      String(port),
      '-r',
      String(count),
      '-i',
      '0.005',
      'INCR',
      'hops',
    ]);
    const counter = () => Number(host('GET', 'hops'));
    while (counter() < 100) await sleep(50);
    const ids = guestIds();
    assert.equal(ids.length, 1, 'one client connection');
    for (const node of ['arm64', 'x64']) {
      const before = counter();
      await cluster.okAsync(['migrate', id, '--to', node]);
      while (counter() < before + 200) await sleep(50);
      assert.deepEqual(guestIds(), ids, `the same client after the move to ${node}`);
    }
    const deadline = Date.now() + 10 * 60_000;
    while (cluster.where(id).status === 'running' && Date.now() < deadline) await sleep(500);
    assert.equal(cluster.where(id).status, 'exited');
    const replies = Array.from({ length: count }, (_, i) => String(i + 1));
    assert.equal(cluster.ok(['logs', id]), `${replies.join('\n')}\n`, 'every reply once, in order');
    assert.equal(counter(), count, 'no command lost or doubled');
  } finally {
    cluster.down();
    server.kill();
  }
});

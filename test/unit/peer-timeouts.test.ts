import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AgentClient, type AgentError } from '../../src/agent/client.js';
import { askEveryNode, type Cluster, ClusterError, loadCluster } from '../../src/cluster/cluster.js';
import { GatewayClient, GatewayError } from '../../src/gateway/client.js';
import { isRoamError } from '../../src/platform/errors.js';
import { listenOn } from '../../src/platform/http.js';
import { tempDir } from '../helpers.js';

/** Accepts connections and never says a word. */
let silent: Server;
let silentUrl: string;
const sockets: Socket[] = [];
/** Answers every request with 200 and `body`. */
let liar: HttpServer;
let liarUrl: string;
let body = '{}';

before(async () => {
  silent = createServer((socket) => sockets.push(socket));
  silentUrl = `http://127.0.0.1:${await listenOn(silent, 0, '127.0.0.1')}`;
  liar = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
  liarUrl = `http://127.0.0.1:${await listenOn(liar, 0, '127.0.0.1')}`;
});
after(() => {
  for (const socket of sockets) socket.destroy();
  silent.close();
  liar.closeAllConnections();
  liar.close();
});

/** A RoamError with this code (and the message matching). */
const fails = (code: string, message: RegExp) => (error: unknown) => {
  assert.ok(isRoamError(error), `a RoamError: ${String(error)}`);
  assert.equal(error.code, code);
  assert.match(error.message, message);
  return true;
};

test('a request to an agent that never answers times out with ROAM_AGENT_TIMEOUT', async () => {
  const started = Date.now();
  await assert.rejects(
    new AgentClient(silentUrl, 't', { timeoutMs: 200 }).node(),
    fails('ROAM_AGENT_TIMEOUT', /did not answer GET \/v1\/node within 0.2 s/),
  );
  assert.ok(Date.now() - started < 5000);
  await assert.rejects(
    new AgentClient(silentUrl, 't', { timeoutMs: 200 }).hasModule('ab'.repeat(32)),
    fails('ROAM_AGENT_TIMEOUT', /HEAD/),
  );
  await assert.rejects(
    new AgentClient(silentUrl, 't', { timeoutMs: 200 }).logs('web', { offset: 0, follow: false }, () => undefined),
    fails('ROAM_AGENT_TIMEOUT', /logs/),
  );
});

test('an answer that stops halfway times out too; a followed log may stay quiet for longer', async () => {
  const staller = createHttpServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    // As the agent does: the head goes at once, the log when there is some.
    if (req.url?.includes('follow=1')) {
      res.flushHeaders();
      setTimeout(() => res.end('late'), 600);
    } else res.write('{"name":');
  });
  const url = `http://127.0.0.1:${await listenOn(staller, 0, '127.0.0.1')}`;
  try {
    const client = new AgentClient(url, 't', { timeoutMs: 200 });
    await assert.rejects(client.node(), fails('ROAM_AGENT_TIMEOUT', /did not answer GET \/v1\/node within 0.2 s/));
    const chunks: Buffer[] = [];
    const followed = await client.logs('web', { offset: 0, follow: true }, (chunk) => chunks.push(chunk));
    assert.equal(followed.bytes, 4);
    assert.equal(Buffer.concat(chunks).toString(), 'late');
  } finally {
    staller.closeAllConnections();
    staller.close();
  }
});

test('a request to a gateway that never answers times out with ROAM_GATEWAY_TIMEOUT', async () => {
  await assert.rejects(
    new GatewayClient(silentUrl, 't', { timeoutMs: 200 }).ports(),
    fails('ROAM_GATEWAY_TIMEOUT', /did not answer GET \/v1\/ports within 0.2 s/),
  );
});

test('an agent nobody listens for is ROAM_AGENT_UNREACHABLE, its cause kept', async () => {
  const closed = createServer();
  const port = await listenOn(closed, 0, '127.0.0.1');
  closed.close();
  await assert.rejects(new AgentClient(`http://127.0.0.1:${port}`, 't').containers(), (error: unknown) => {
    fails('ROAM_AGENT_UNREACHABLE', /cannot reach the agent/)(error);
    assert.equal(((error as AgentError).cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    return true;
  });
  await assert.rejects(
    new GatewayClient(`http://127.0.0.1:${port}`, 't').ports(),
    (error: unknown) => error instanceof GatewayError && error.code === 'ROAM_GATEWAY_UNREACHABLE',
  );
});

test('an answer of the wrong shape is ROAM_AGENT_BAD_ANSWER naming the field, not a crash later', async () => {
  body = JSON.stringify({ name: 'x64', isa: 'x64' });
  await assert.rejects(
    new AgentClient(liarUrl, 't').node(),
    fails('ROAM_AGENT_BAD_ANSWER', /answered GET \/v1\/node with an unexpected body: host: expected a string/),
  );
  body = JSON.stringify([{ id: 'nope' }]);
  await assert.rejects(
    new AgentClient(liarUrl, 't').containers(),
    fails('ROAM_AGENT_BAD_ANSWER', /\[0\]\.id: expected a container ID/),
  );
  body = 'not json';
  await assert.rejects(new AgentClient(liarUrl, 't').node(), fails('ROAM_AGENT_BAD_ANSWER', /with no JSON/));
  body = '{"progress":{"phase":"connecting","sentBytes":0,"memoryBytes":1}}\n{"result":{}}\n';
  const lines: unknown[] = [];
  await assert.rejects(
    new AgentClient(liarUrl, 't').migrate('0123456789ab', { to: { name: 'b', url: 'http://b' } }, (l) => lines.push(l)),
    fails('ROAM_AGENT_BAD_ANSWER', /result\.mode: expected one of/),
  );
  assert.equal(lines.length, 1, 'the good line came through');
  body = JSON.stringify({ hostPort: 1 });
  await assert.rejects(
    new GatewayClient(liarUrl, 't').publish({ hostPort: 1, container: '0123456789ab', port: 1 }),
    fails('ROAM_GATEWAY_BAD_ANSWER', /container: expected a container ID/),
  );
});

test('askEveryNode does not wait on a silent node: it comes back as unreachable', async () => {
  body = JSON.stringify([]);
  const cluster: Cluster = {
    token: 't',
    createdAt: new Date().toISOString(),
    nodes: [
      { name: 'quiet', isa: 'arm64', url: silentUrl, pid: 0, stateDir: '/nonexistent' },
      { name: 'fine', isa: 'x64', url: liarUrl, pid: 0, stateDir: '/nonexistent' },
    ],
  };
  const started = Date.now();
  const answers = await askEveryNode(cluster, (client) => client.containers(), { timeoutMs: 300 });
  assert.ok(Date.now() - started < 5000);
  assert.equal(answers[0]!.node.name, 'quiet');
  assert.equal(answers[0]!.error?.code, 'ROAM_AGENT_TIMEOUT');
  assert.deepEqual(answers[1]!.value, []);
});

test('a damaged cluster file is ROAM_CLUSTER_FILE_INVALID, saying what is wrong', () => {
  const { dir, cleanup } = tempDir();
  const previous = process.env.ROAM_CLUSTER_DIR;
  process.env.ROAM_CLUSTER_DIR = dir;
  try {
    assert.throws(
      loadCluster,
      (error: unknown) => error instanceof ClusterError && error.code === 'ROAM_CLUSTER_NOT_UP',
    );
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'cluster.json');
    writeFileSync(file, '{"token": ');
    assert.throws(loadCluster, fails('ROAM_CLUSTER_FILE_INVALID', /cluster\.json is damaged \(not JSON\)/));
    writeFileSync(file, JSON.stringify({ token: 't', createdAt: 'now', nodes: [{ name: 'x64', isa: 'x64', pid: 1 }] }));
    assert.throws(loadCluster, fails('ROAM_CLUSTER_FILE_INVALID', /nodes\[0\]\.url: expected a string/));
    const good = {
      token: 't',
      createdAt: 'now',
      nodes: [{ name: 'x64', isa: 'x64', url: 'http://127.0.0.1:1', pid: 1, stateDir: '/s' }],
      gateway: { url: 'http://127.0.0.1:2', tunnel: '127.0.0.1:3', pid: 2, stateDir: '/g' },
    };
    writeFileSync(file, JSON.stringify(good));
    assert.deepEqual(loadCluster(), good);
  } finally {
    if (previous === undefined) delete process.env.ROAM_CLUSTER_DIR;
    else process.env.ROAM_CLUSTER_DIR = previous;
    cleanup();
  }
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type * as v from 'valibot';
import { Agent } from '../../src/agent/agent.js';
import {
  ContainerInfoSchema,
  IncomingReplySchema,
  IncomingRequestSchema,
  MigrateLineSchema,
  MigrateRequestSchema,
  NodeFactsSchema,
  StartRequestSchema,
} from '../../src/agent/api.js';
import { AgentClient, AgentError } from '../../src/agent/client.js';
import { defaultPower, nodeFacts } from '../../src/agent/facts.js';
import { GatewayClient, GatewayError } from '../../src/gateway/client.js';
import { Gateway, PortInfoSchema, PublicationSchema } from '../../src/gateway/gateway.js';
import { hasCode, isRoamError } from '../../src/platform/errors.js';
import { HttpError, parseBody } from '../../src/platform/http.js';
import { check } from '../../src/platform/schema.js';
import { repoRoot, tempDir } from '../helpers.js';

const digest = 'ab'.repeat(32);
const token = 'unit-token';

/** The message a schema gives a value, or 'ok'. */
function verdict(schema: v.GenericSchema, value: unknown): string {
  const result = check(schema, value);
  return result.ok ? 'ok' : result.message;
}

test('the schemas accept what the real code sends', () => {
  // As `roam run` asks (cluster.startOnNode adds module and ports).
  assert.equal(
    verdict(StartRequestSchema, {
      args: ['primes.wasm', '100'],
      env: { HOME: '/' },
      dirs: [{ guestPath: '/data', hostPath: '/tmp' }],
      name: 'web',
      module: digest,
      ports: [80, 443],
    }),
    'ok',
  );
  assert.equal(verdict(StartRequestSchema, { args: [], module: digest }), 'ok');
  // As Agent.migrate builds it from its record; name is absent for an unnamed container.
  assert.equal(
    verdict(IncomingRequestSchema, {
      id: '0123456789ab',
      module: digest,
      args: ['a'],
      guestPaths: ['/data'],
      createdAt: new Date().toISOString(),
      history: ['x64'],
      ports: [],
    }),
    'ok',
  );
  // As cluster.migrateContainer sends it (mode and maxRounds may be absent).
  assert.equal(verdict(MigrateRequestSchema, { to: { name: 'arm64', url: 'http://127.0.0.1:7070' } }), 'ok');
  assert.equal(
    verdict(MigrateRequestSchema, {
      to: { name: 'arm64', url: 'http://127.0.0.1:7070', token: 't' },
      mode: 'pre-post',
      maxRounds: 3,
      dirtyTracking: 'compare',
    }),
    'ok',
  );
  assert.equal(
    verdict(
      NodeFactsSchema,
      nodeFacts(
        'x64',
        defaultPower.x64,
        { dirtyTracking: 'compare', dirtyTrackingNote: 'why', postCopy: false },
        false,
      ),
    ),
    'ok',
  );
  assert.equal(verdict(IncomingReplySchema, { host: '127.0.0.1', port: 40000, ticket: 'ab'.repeat(24) }), 'ok');
  assert.equal(verdict(PublicationSchema, { hostPort: 6379, container: '3f9a0c1b2d4e', port: 6379 }), 'ok');
});

test('the migrate stream example of docs/agent-api.yaml fits MigrateLine, line by line', () => {
  const yaml = readFileSync(join(repoRoot, 'docs', 'agent-api.yaml'), 'utf8');
  const lines = [...yaml.matchAll(/^ {16}(\{"(?:progress|result)".*)$/gm)].map((m) => JSON.parse(m[1]!) as unknown);
  assert.ok(lines.length >= 3, 'the example is found');
  for (const line of lines) assert.equal(verdict(MigrateLineSchema, line), 'ok', JSON.stringify(line));
  assert.equal(verdict(MigrateLineSchema, { error: 'checksum mismatch in round 1' }), 'ok');
});

test('bad bodies are refused with the field and what it expects', () => {
  const start = { module: digest, args: [] };
  const cases: [v.GenericSchema, unknown, string][] = [
    [StartRequestSchema, null, 'expected a JSON object {module, args, env?, dirs?, name?, ports?, allow?}'],
    [StartRequestSchema, [], 'expected a JSON object {module, args, env?, dirs?, name?, ports?, allow?}'],
    [StartRequestSchema, { args: [] }, 'module: expected the sha256 digest of an uploaded module'],
    [StartRequestSchema, { module: 'abc', args: [] }, 'module: expected the sha256 digest of an uploaded module'],
    [StartRequestSchema, { module: digest }, 'args: expected an array of strings'],
    [StartRequestSchema, { module: digest, args: 'a b' }, 'args: expected an array of strings'],
    [StartRequestSchema, { module: digest, args: ['a', 1] }, 'args[1]: expected a string'],
    [StartRequestSchema, { ...start, env: { HOME: 1 } }, 'env.HOME: expected a string'],
    [StartRequestSchema, { ...start, env: ['A=1'] }, 'env: expected an object whose values are strings'],
    [StartRequestSchema, { ...start, dirs: [{ hostPath: '/' }] }, 'dirs[0].guestPath: expected a string'],
    [StartRequestSchema, { ...start, dirs: '/tmp' }, 'dirs: expected [{hostPath, guestPath}]'],
    [StartRequestSchema, { ...start, name: '' }, 'name: expected a non-empty string'],
    [StartRequestSchema, { ...start, ports: [80, 80] }, 'ports: expected distinct TCP port numbers'],
    [StartRequestSchema, { ...start, ports: [70000] }, 'ports[0]: expected a TCP port number (1-65535)'],
    [StartRequestSchema, { ...start, ports: ['80'] }, 'ports[0]: expected a TCP port number'],
    [StartRequestSchema, { ...start, allow: '10.0.0.0/8' }, 'allow: expected an array of allow-list rules'],
    [
      StartRequestSchema,
      { ...start, allow: ['db.internal'] },
      'allow[0]: expected an allow-list rule ADDR[/PREFIX][:PORT] or none',
    ],
    [IncomingRequestSchema, {}, 'id: expected a container ID (12 hex digits)'],
    [IncomingRequestSchema, { id: 'web' }, 'id: expected a container ID (12 hex digits)'],
    [
      IncomingRequestSchema,
      { id: '0123456789ab', module: digest, args: [], guestPaths: [], createdAt: 'yesterday', history: [] },
      'createdAt: expected an ISO 8601 timestamp',
    ],
    [MigrateRequestSchema, {}, 'to: expected {name, url} of the destination agent'],
    [MigrateRequestSchema, { to: { name: 'arm64' } }, 'to.url: expected the base URL of the destination agent'],
    [
      MigrateRequestSchema,
      { to: { name: 'arm64', url: 'http://h:1' }, mode: 'teleport' },
      'mode: expected one of stop-copy, pre-copy, post-copy, pre-post, auto',
    ],
    [MigrateRequestSchema, { to: { name: 'arm64', url: 'http://h:1' }, maxRounds: 0 }, 'maxRounds: expected >= 1'],
    [
      MigrateLineSchema,
      { progress: { phase: 'warp' } },
      'progress.phase: expected one of connecting, pre-copy, stop-copy, post-copy',
    ],
    [MigrateLineSchema, { done: true }, 'expected {progress}, {result} or {error}'],
    [
      PublicationSchema,
      { hostPort: 0, container: '3f9a0c1b2d4e', port: 80 },
      'hostPort: expected a TCP port number (1-65535)',
    ],
    [
      PublicationSchema,
      { hostPort: 8080, container: 'web', port: 80 },
      'container: expected a container ID (12 hex digits)',
    ],
    [ContainerInfoSchema, { id: '0123456789ab' }, 'node: expected a string'],
    [PortInfoSchema, { hostPort: 1, container: '3f9a0c1b2d4e', port: 1 }, 'attached: expected true or false'],
  ];
  for (const [schema, value, message] of cases) assert.equal(verdict(schema, value), message, JSON.stringify(value));
});

test('parseBody answers 400 with that message (an HttpError, a RoamError with a code)', () => {
  assert.throws(
    () => parseBody(StartRequestSchema, { module: digest, args: [1] }),
    (error: unknown) =>
      error instanceof HttpError &&
      error.status === 400 &&
      error.message === 'args[0]: expected a string' &&
      hasCode(error, 'ROAM_HTTP_ERROR'),
  );
  const cause = new Error('inner');
  assert.equal(new HttpError(502, 'outer', { cause }).cause, cause);
});

// An agent and a gateway in this process, on ports of their own.
const { dir, cleanup } = tempDir();
let agent: Agent;
let agentUrl: string;
let gateway: Gateway;
let gatewayUrl: string;

before(async () => {
  agent = new Agent({
    name: 'unit',
    host: '127.0.0.1',
    port: 0,
    token,
    stateDir: join(dir, 'agent'),
    power: defaultPower.x64,
    capabilities: { dirtyTracking: 'compare', postCopy: false, postCopyNote: 'not here' },
  });
  agentUrl = await agent.listen();
  gateway = new Gateway({ host: '127.0.0.1', apiPort: 0, tunnelPort: 0, token });
  gatewayUrl = (await gateway.listen()).url;
});
after(() => {
  agent.close();
  gateway.close();
  cleanup();
});

async function post(url: string, body: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body });
  return { status: response.status, body: await response.json() };
}

test('the agent answers 400 to bad bodies, naming the field', async () => {
  const cases: [string, unknown, string][] = [
    ['/v1/containers', [], 'expected a JSON object {module, args, env?, dirs?, name?, ports?, allow?}'],
    ['/v1/containers', { module: digest, args: 'x' }, 'args: expected an array of strings'],
    ['/v1/containers', { module: digest, args: [], dirs: [{}] }, 'dirs[0].hostPath: expected a string'],
    ['/v1/migrations', { id: '0123456789ab', module: digest, args: [] }, 'guestPaths: expected an array of strings'],
  ];
  for (const [path, body, error] of cases)
    assert.deepEqual(await post(`${agentUrl}${path}`, JSON.stringify(body)), { status: 400, body: { error } }, path);
  assert.deepEqual(await post(`${agentUrl}/v1/containers`, '{'), {
    status: 400,
    body: { error: 'request body is not valid JSON' },
  });
  // A well-formed body gets as far as the checks that need the node.
  assert.equal((await post(`${agentUrl}/v1/containers`, JSON.stringify({ module: digest, args: [] }))).status, 409);
  assert.deepEqual(await post(`${agentUrl}/v1/containers`, JSON.stringify({ module: digest, args: [], ports: [80] })), {
    status: 409,
    body: { error: `module ${digest.slice(0, 16)}… is not on node unit: upload it first (PUT /v1/modules/{digest})` },
  });
});

test('AgentClient reads checked answers, and an error answer is an AgentError with its status', async () => {
  const client = new AgentClient(agentUrl, token);
  const facts = await client.node();
  assert.equal(facts.name, 'unit');
  assert.equal(facts.capabilities.postCopyNote, 'not here');
  assert.deepEqual(await client.containers(), []);
  assert.equal(await client.hasModule(digest), false);
  await assert.rejects(client.start({ module: digest, args: [] }), (error: unknown) => {
    assert.ok(error instanceof AgentError && isRoamError(error));
    assert.equal(error.code, 'ROAM_AGENT_REFUSED');
    assert.equal(error.status, 409);
    assert.match(error.message, /is not on node unit: upload it first/);
    return true;
  });
  await assert.rejects(new AgentClient(agentUrl, 'wrong').node(), (error: unknown) => {
    assert.ok(error instanceof AgentError);
    assert.equal(error.status, 401);
    return true;
  });
});

test('the gateway answers 400 to bad publications; its client reads checked answers', async () => {
  assert.deepEqual(await post(`${gatewayUrl}/v1/ports`, JSON.stringify({ hostPort: 8080, port: 80 })), {
    status: 400,
    body: { error: 'container: expected a container ID (12 hex digits)' },
  });
  const client = new GatewayClient(gatewayUrl, token);
  assert.deepEqual(await client.ports(), []);
  await assert.rejects(
    client.publish({ hostPort: 8080, container: 'web', port: 80 }),
    (error: unknown) =>
      error instanceof GatewayError &&
      error.code === 'ROAM_GATEWAY_REFUSED' &&
      error.status === 400 &&
      error.message === 'gateway: container: expected a container ID (12 hex digits)',
  );
  assert.deepEqual(await client.forget('3f9a0c1b2d4e'), []);
});

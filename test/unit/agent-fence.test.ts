import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Agent } from '../../src/agent/agent.js';
import { AgentClient } from '../../src/agent/client.js';
import { defaultPower } from '../../src/agent/facts.js';
import { sha256 } from '../../src/build/manifest.js';
import { isRoamError } from '../../src/platform/errors.js';
import { tempDir } from '../helpers.js';

/** The destination agent's side of fencing, over its HTTP API (in this process, no container process). */

const { dir, cleanup } = tempDir();
const token = 'fence-test-token';
let agent: Agent;
let client: AgentClient;
const module = Buffer.from('not really a module, but stored by its digest');
const digest = sha256(module);
const id = 'a1b2c3d4e5f6';

before(async () => {
  agent = new Agent({
    name: 'fenced',
    host: '127.0.0.1',
    port: 0,
    token,
    stateDir: join(dir, 'agent'),
    power: defaultPower.x64,
    capabilities: { dirtyTracking: 'compare', postCopy: false },
  });
  client = new AgentClient(await agent.listen(), token);
  await client.putModule(digest, module);
});
after(() => {
  agent.close();
  cleanup();
});

const incoming = (epoch?: number) => ({
  id,
  module: digest,
  args: [],
  guestPaths: [],
  createdAt: new Date().toISOString(),
  history: ['source'],
  ...(epoch === undefined ? {} : { epoch }),
});

test('an epoch this agent never saw is aborted for good: a later migration of it is refused', async () => {
  assert.deepEqual(await client.fence(id, 2), { answer: 'aborted' });
  assert.deepEqual(await client.fence(id, 2), { answer: 'aborted' }, 'asking again gives the same answer');
  await assert.rejects(client.prepareIncoming(incoming(2)), (error: unknown) => {
    assert.ok(isRoamError(error));
    assert.equal(error.code, 'ROAM_AGENT_REFUSED');
    assert.match(error.message, /epoch 2 of container a1b2c3d4e5f6 was aborted here/);
    return true;
  });
});

test('a migration without an epoch (a source from before epochs) is refused', async () => {
  await assert.rejects(client.prepareIncoming(incoming()), /the source sent no epoch/);
});

test('recover is refused for a container that is not unsettled', async () => {
  await assert.rejects(client.recover('0123456789ab'), /no container 0123456789ab/);
});

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as v from 'valibot';
import { MultiProcessState } from '../../src/container/multi-process-state.js';
import { Image } from '../../src/image/image.js';
import { buildFixture, roam, roamInBackground, sleep, tempDir } from '../helpers.js';

const { dir, cleanup } = tempDir('roam-mp-checkpoint-');
const runtimeDir = join(dir, 'run');
process.env.ROAM_RUNTIME_DIR = runtimeDir;
after(cleanup);

/**
 * A client driving a server over loopback, slowly (it naps after each send, so the server's
 * answer waits in the connection), its stdout piped into a sink slower still (bytes wait in the
 * pipe), whose 7-byte writes leave half lines in its prefixed output. A hundred lines: about 4 s
 * of conversation, so that a checkpoint lands in it even on a loaded machine (with 30 lines the
 * client could finish before `roam checkpoint` got through).
 */
const spec = `
name: talk
processes:
  - name: server
    module: modules/line-server.roam.wasm
    args: [7000, 1]
  - name: client
    module: modules/slow-client.roam.wasm
    args: [7000, 100, 40]
  - name: sink
    module: modules/slow-sink.roam.wasm
    args: [20]
    stdin: {from: client}
`;
const specFile = join(dir, 'talk.yaml');
let reference: Record<string, string[]>;

before(() => {
  for (const name of ['line-server', 'slow-client', 'slow-sink']) buildFixture(name, join(dir, 'modules'));
  writeFileSync(specFile, spec);
  const run = roam(['run', '-f', specFile]);
  assert.equal(run.status, 0, run.stderr);
  reference = byProcess(run.stdout);
  assert.equal(reference.sink!.length, 101, 'a hundred answers and the total');
});

/** Each process's lines, without their prefix. */
function byProcess(stdout: string): Record<string, string[]> {
  const lines: Record<string, string[]> = { server: [], client: [], sink: [] };
  for (const line of stdout.split('\n').filter(Boolean)) {
    const match = /^(\w+)\s+\| (.*)$/.exec(line);
    assert.ok(match, `unprefixed output: ${line}`);
    lines[match[1]!]!.push(match[2]!);
  }
  return lines;
}

/** Runs the container as NAME and checkpoints it mid-conversation into IMAGE; its output so far. */
async function checkpointMidConversation(name: string, image: string): Promise<string> {
  const source = roamInBackground(['run', '-f', specFile, '--name', name]);
  const deadline = Date.now() + 60_000;
  // Well into the conversation: the sink has printed a few answers.
  while (!/sink\s+\| 4 -> /.test(source.stdout())) {
    if (Date.now() > deadline) assert.fail(`the conversation did not start: ${source.stderr()}`);
    await sleep(20);
  }
  const checkpoint = roam(['checkpoint', name, '-o', image]);
  assert.equal(checkpoint.status, 0, checkpoint.stderr);
  const first = await source.done;
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stderr, /roam: client stopped: checkpointed to/);
  assert.doesNotMatch(first.stdout, /total=/, 'checkpointed before the end');
  return first.stdout;
}

test('a checkpoint keeps the bytes in flight on a connection and on a pipe, in one image', async () => {
  const image = join(dir, 'in-flight.img');
  await checkpointMidConversation('in-flight', image);
  const opened = Image.open(image);
  assert.deepEqual(
    opened.processes.map((p) => p.name),
    ['server', 'client', 'sink'],
  );
  const state = v.parse(MultiProcessState, opened.containerState());
  const pending = (family: string, holders: [number, number]) =>
    state.broker.pairs
      .filter((p) => p.family === family && String(state.broker.holders[p.id]) === String(holders))
      .map((p) => Buffer.from(p.data[0], 'base64').length + Buffer.from(p.data[1], 'base64').length);
  // The client naps after each send: the server's answer waits in their connection.
  assert.ok(
    pending('inet', [1, 0]).some((n) => n > 0),
    'bytes in flight between client and server',
  );
  assert.ok(
    pending('unix', [1, 2]).some((n) => n > 0),
    'bytes in flight in the pipe from client to sink',
  );
});

for (const isa of [undefined, 's390x']) {
  test(`checkpointed mid-conversation, restored ${isa ? `on ${isa}` : 'here'}: output identical to an uninterrupted run`, async () => {
    const image = join(dir, `talk-${isa ?? 'here'}.img`);
    const first = await checkpointMidConversation(`talk-${isa ?? 'here'}`, image);
    const restored = roam(['restore', image, ...(isa ? ['--isa', isa] : [])]);
    assert.equal(restored.status, 0, restored.stderr);
    const before = byProcess(first);
    const after = byProcess(restored.stdout);
    for (const name of ['server', 'client', 'sink'])
      assert.deepEqual([...before[name]!, ...after[name]!], reference[name], `${name}'s output`);
    assert.match(restored.stderr, /roam: sink exited with status 0/);
  });
}

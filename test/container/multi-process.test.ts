import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildFixture, roam, tempDir } from '../helpers.js';

const { dir, cleanup } = tempDir('roam-multi-process-');
after(cleanup);

before(() => {
  for (const name of ['line-server', 'line-client', 'echo-stdin']) buildFixture(name, join(dir, 'modules'));
});

function runSpec(name: string, text: string) {
  const file = join(dir, name);
  writeFileSync(file, text);
  return roam(['run', '-f', file]);
}

/** The lines a process printed, without its prefix. */
const linesOf = (stdout: string, name: string) =>
  stdout
    .split('\n')
    .filter((line) => line.startsWith(`${name} `))
    .map((line) => line.slice(line.indexOf('| ') + 2));

const threeProcesses = (serverClients: number, clientExtra = '') => `
name: demo
env: {CLIENT_STATUS: 0}
processes:
  - name: server
    module: modules/line-server.roam.wasm
    args: [7000, ${serverClients}]
  - name: client
    module: modules/line-client.roam.wasm
    args: [7000, alpha, beta, gamma]
    env: {CLIENT_STATUS: 3}
    ${clientExtra}
  - name: sink
    module: modules/echo-stdin.roam.wasm
    stdin: {from: client}
`;

test('a client process drives a server process over loopback TCP; its stdout is piped into a third', () => {
  const result = runSpec('app.yaml', threeProcesses(1));
  assert.deepEqual(linesOf(result.stdout, 'server'), ['listening on 7000', 'served 3 lines'], result.stderr);
  assert.deepEqual(linesOf(result.stdout, 'sink'), [
    'alpha -> 1: ALPHA',
    'beta -> 2: BETA',
    'gamma -> 3: GAMMA',
    '',
    'total=52',
  ]);
  assert.deepEqual(linesOf(result.stdout, 'client'), [], 'the client writes into the pipe only');
  // Exit codes per process; the container's is the first that is not 0.
  const ends = result.stderr
    .split('\n')
    .filter((line) => line.startsWith('roam: '))
    .sort();
  assert.deepEqual(ends, [
    'roam: client exited with status 3',
    'roam: server exited with status 0',
    'roam: sink exited with status 0',
  ]);
  assert.equal(result.status, 3);
});

test('a process that exits leaves the others running, unless its spec says stop-container', () => {
  // The server serves forever: the client's exit ends the container.
  const result = runSpec('stop.yaml', threeProcesses(0, 'onExit: stop-container'));
  assert.match(result.stderr, /roam: client exited with status 3/);
  assert.match(result.stderr, /roam: server stopped: client ended \(onExit: stop-container\)/);
  assert.deepEqual(linesOf(result.stdout, 'sink').slice(0, 3), [
    'alpha -> 1: ALPHA',
    'beta -> 2: BETA',
    'gamma -> 3: GAMMA',
  ]);
  assert.equal(result.status, 3);
});

test('an invalid spec is refused before anything starts, with a message that names the problem', () => {
  const cases: [string, string, RegExp][] = [
    [
      'unknown',
      threeProcesses(1).replace('from: client', 'from: web'),
      /sink reads stdin from web, which the spec does not have/,
    ],
    ['cycle', threeProcesses(1, 'stdin: {from: sink}'), /pipes go round in a cycle/],
    [
      'clash',
      threeProcesses(1)
        .replace('args: [7000, 1]', 'args: [7000, 1]\n    listens: [7000]')
        .replace('CLIENT_STATUS: 3}', 'CLIENT_STATUS: 3}\n    listens: [7000]'),
      /server and client both listen on port 7000/,
    ],
    [
      'missing',
      threeProcesses(1).replace('modules/echo-stdin', 'modules/absent'),
      /process sink: module modules\/absent.roam.wasm does not exist/,
    ],
  ];
  for (const [name, text, message] of cases) {
    const result = runSpec(`${name}.yaml`, text);
    assert.equal(result.status, 1, name);
    assert.match(result.stderr, message, name);
    assert.equal(result.stdout, '', `${name}: nothing ran`);
    assert.doesNotMatch(result.stderr, /exited with status/, `${name}: nothing ran`);
  }
});

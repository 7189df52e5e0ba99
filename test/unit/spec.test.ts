import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadSpec, parseSpec, SpecError } from '../../src/container/spec.js';
import { isAllowRule } from '../../src/platform/allow-list.js';
import { tempDir } from '../helpers.js';

const valid = `
name: shop
ports: ["8080:80", 9000]
dirs: [data:/data]
env: {MODE: test, WORKERS: 2}
connect: [10.0.0.0/8, "192.168.1.5:5432", "[fd00::1]/64:443", "::1"]
processes:
  - name: server
    module: server.wasm
    args: [--port, 80]
    listens: [80]
  - name: client
    module: client.wasm
    env: {TARGET: 127.0.0.1}
    onExit: stop-container
  - name: sink
    module: sink.wasm
    stdin: {from: client}
`;

function refused(text: string, code: string, mentions: RegExp): void {
  assert.throws(
    () => parseSpec(text, 'app.yaml'),
    (error: unknown) => error instanceof SpecError && error.code === code && mentions.test(error.message),
  );
}

const twoProcesses = (extra: string, first = '', second = '') => `
name: c
${extra}
processes:
  - {name: a, module: a.wasm${first}}
  - {name: b, module: b.wasm${second}}
`;

test('a valid spec: defaults filled, ports and dirs parsed, env values as text', () => {
  const spec = parseSpec(valid);
  assert.equal(spec.name, 'shop');
  assert.deepEqual(spec.ports, [
    { hostPort: 8080, port: 80 },
    { hostPort: 9000, port: 9000 },
  ]);
  assert.deepEqual(spec.dirs, [{ hostPath: 'data', guestPath: '/data' }]);
  assert.deepEqual(spec.env, { MODE: 'test', WORKERS: '2' });
  assert.equal(spec.connect?.length, 4);
  const [server, client, sink] = spec.processes;
  assert.deepEqual(server?.args, ['--port', '80']);
  assert.equal(server?.onExit, 'continue');
  assert.equal(client?.onExit, 'stop-container');
  assert.deepEqual(sink?.stdin, { from: 'client' });
  assert.equal(parseSpec(twoProcesses('')).connect, undefined, 'no list: any destination');
});

test('a spec of the wrong shape is refused, naming the field', () => {
  refused('name: [', 'ROAM_SPEC_INVALID', /not YAML/);
  refused('name: c\nprocesses: []', 'ROAM_SPEC_INVALID', /processes: expected at least one process/);
  refused(
    twoProcesses('', ', onExit: restart'),
    'ROAM_SPEC_INVALID',
    /processes\[0\]\.onExit: expected continue or stop-container/,
  );
  refused(twoProcesses('', ', command: x'), 'ROAM_SPEC_INVALID', /processes\[0\]\.command: unexpected field/);
  refused(twoProcesses('ports: ["80:99999"]'), 'ROAM_SPEC_INVALID', /ports\[0\]/);
  refused(twoProcesses('connect: [example.com]'), 'ROAM_SPEC_INVALID', /connect\[0\]: expected ADDR/);
  refused(twoProcesses('', '', ', stdin: web'), 'ROAM_SPEC_INVALID', /processes\[1\]\.stdin/);
});

test('duplicate process names, unknown processes and cycles in pipes are refused', () => {
  refused(
    'name: c\nprocesses: [{name: a, module: a.wasm}, {name: a, module: b.wasm}]',
    'ROAM_SPEC_DUPLICATE_NAME',
    /two processes are named a/,
  );
  refused(twoProcesses('', ', stdin: {from: web}'), 'ROAM_SPEC_UNKNOWN_PROCESS', /a reads stdin from web/);
  refused(
    twoProcesses('', ', stdin: {from: b}', ', stdin: {from: a}'),
    'ROAM_SPEC_PIPE',
    /cycle: (a -> b -> a|b -> a -> b)/,
  );
  refused(twoProcesses('', ', stdin: {from: a}'), 'ROAM_SPEC_PIPE', /cycle: a -> a/);
  refused(
    'name: c\nprocesses: [{name: a, module: a.wasm}, {name: b, module: b.wasm, stdin: {from: a}}, {name: d, module: d.wasm, stdin: {from: a}}]',
    'ROAM_SPEC_PIPE',
    /stdout of a is piped into both b and d/,
  );
});

test('a port published twice, or listened on by two processes, is refused', () => {
  refused(twoProcesses('ports: ["8080:80", "8080:81"]'), 'ROAM_SPEC_PORT_CLASH', /host port 8080 is published twice/);
  refused(twoProcesses('ports: ["8080:80", "8081:80"]'), 'ROAM_SPEC_PORT_CLASH', /port 80 is published twice/);
  refused(
    twoProcesses('', ', listens: [80]', ', listens: [81, 80]'),
    'ROAM_SPEC_PORT_CLASH',
    /a and b both listen on port 80/,
  );
});

test('connect rules: addresses, prefixes, ports, none', () => {
  for (const rule of [
    'none',
    '10.1.2.3',
    '10.0.0.0/8',
    '10.0.0.0/8:80',
    '1.2.3.4:65535',
    '::1',
    'fd00::/8',
    '[fd00::]/8:443',
    '[::1]:6379',
  ])
    assert.ok(isAllowRule(rule), rule);
  for (const rule of [
    '',
    'localhost',
    '10.0.0.0/33',
    '1.2.3.4:0',
    '1.2.3.4:70000',
    '[::1]:80/8',
    '[::1]/129',
    '1.2.3.4/8/8',
  ])
    assert.ok(!isAllowRule(rule), rule);
});

test('loadSpec resolves modules and directories next to the spec, and refuses missing ones', () => {
  const { dir, cleanup } = tempDir();
  try {
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 'a.wasm'), '');
    writeFileSync(join(dir, 'b.wasm'), '');
    const file = join(dir, 'app.yaml');
    writeFileSync(file, twoProcesses('dirs: [data:/data]'));
    const spec = loadSpec(file);
    assert.equal(spec.processes[1]?.module, join(dir, 'b.wasm'));
    assert.equal(spec.dirs[0]?.hostPath, join(dir, 'data'));
    writeFileSync(file, twoProcesses('dirs: [absent:/data]'));
    assert.throws(() => loadSpec(file), { code: 'ROAM_SPEC_MISSING_FILE', message: /directory absent does not exist/ });
    writeFileSync(file, twoProcesses('').replace('b.wasm', 'nowhere.wasm'));
    assert.throws(() => loadSpec(file), {
      code: 'ROAM_SPEC_MISSING_FILE',
      message: /process b: module nowhere.wasm does not exist/,
    });
    assert.throws(() => loadSpec(join(dir, 'none.yaml')), { code: 'ROAM_SPEC_MISSING_FILE' });
  } finally {
    cleanup();
  }
});

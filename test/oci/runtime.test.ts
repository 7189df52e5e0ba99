import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot, roam, sleep, tempDir } from '../helpers.js';

/**
 * bin/roam-runtime driven as an engine drives it, without the engine: a bundle on disk, a --root
 * of its own, errors in a JSON log, the guest's output in files (as conmon's pipes would take it).
 */
const runtime = join(repoRoot, 'bin', 'roam-runtime');
const { dir, cleanup } = tempDir('roam-oci-runtime-');
const root = join(dir, 'root');
const logFile = join(dir, 'runtime.log');
let module: string;

before(() => {
  module = join(dir, 'guest.wasm');
  const cc = roam(['cc', '-O2', join(repoRoot, 'test', 'oci', 'guest.c'), '-o', module]);
  assert.equal(cc.status, 0, cc.stderr);
});
after(() => {
  // A test that failed half-way may leave a guest process: end it (ours only: they run in `dir`).
  for (const pid of processesMentioning(dir)) process.kill(pid, 'SIGKILL');
  cleanup();
});

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `roam-runtime --root ROOT --log LOG --log-format json ARGS`; the guest's stdio goes to `output` when given. */
function runtimeCommand(args: string[], output?: string): Run {
  const fd = output ? openSync(output, 'a') : undefined;
  try {
    const result = spawnSync(runtime, ['--root', root, '--log', logFile, '--log-format', 'json', ...args], {
      stdio: ['ignore', fd ?? 'pipe', fd ?? 'pipe'],
      encoding: 'utf8',
    });
    return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A bundle whose rootfs holds `files` (name -> host file) and whose process is `args`. */
function makeBundle(name: string, args: string[], files: Record<string, string>, env: string[] = []): string {
  const bundle = join(dir, name);
  mkdirSync(join(bundle, 'rootfs'), { recursive: true });
  for (const [file, source] of Object.entries(files)) copyFileSync(source, join(bundle, 'rootfs', file));
  const config = { ociVersion: '1.0.2', process: { args, env, cwd: '/' }, root: { path: 'rootfs' } };
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
  return bundle;
}

const state = (id: string) => JSON.parse(runtimeCommand(['state', id]).stdout) as { status: string; pid: number };

/** The error lines of the log written since `from` characters, parsed. */
function logErrors(from: number): { level: string; msg: string; time: string }[] {
  return readFileSync(logFile, 'utf8')
    .slice(from)
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
}
const logLength = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').length : 0);

function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function waitForStatus(id: string, want: string): Promise<void> {
  for (let waited = 0; state(id).status !== want; waited += 50) {
    if (waited > 20_000) assert.fail(`container ${id} never became ${want} (${state(id).status})`);
    await sleep(50);
  }
}

test('create, state, start, state, delete: the guest runs with the bundle args and env, its output on the stdio create was given', async () => {
  const bundle = makeBundle('hello', ['/guest.wasm', '5'], { 'guest.wasm': module }, ['GREETING=oci']);
  const output = join(dir, 'hello.out');
  const pidFile = join(dir, 'hello.pid');
  const created = runtimeCommand(['create', '--bundle', bundle, '--pid-file', pidFile, 'hello'], output);
  assert.equal(created.status, 0, readFileSync(output, 'utf8'));
  const pid = Number(readFileSync(pidFile, 'utf8'));
  assert.deepEqual(state('hello'), {
    ...state('hello'),
    ociVersion: '1.0.2',
    id: 'hello',
    status: 'created',
    pid,
    bundle,
  });
  assert.equal(readFileSync(output, 'utf8'), '', 'nothing runs before start');
  assert.equal(runtimeCommand(['start', 'hello']).status, 0);
  await waitForStatus('hello', 'stopped');
  assert.equal(state('hello').pid, 0);
  assert.equal(readFileSync(output, 'utf8'), 'arg1=5\nGREETING=oci\n');
  const from = logLength();
  assert.equal(runtimeCommand(['start', 'hello']).status, 1);
  assert.match(logErrors(from)[0]!.msg, /cannot start container hello: it is stopped/);
  assert.equal(runtimeCommand(['delete', 'hello']).status, 0);
  assert.ok(!existsSync(join(root, 'hello')));
});

test('kill stops a running guest; delete refuses a live one without --force', async () => {
  const bundle = makeBundle('forever', ['/guest.wasm', 'forever'], { 'guest.wasm': module });
  const output = join(dir, 'forever.out');
  assert.equal(runtimeCommand(['create', '--bundle', bundle, 'forever'], output).status, 0);
  assert.equal(runtimeCommand(['start', 'forever']).status, 0);
  assert.equal(state('forever').status, 'running');
  const from = logLength();
  assert.equal(runtimeCommand(['delete', 'forever']).status, 1);
  assert.match(logErrors(from)[0]!.msg, /cannot delete container forever: it is running/);
  assert.equal(runtimeCommand(['kill', 'forever', 'TERM']).status, 0);
  await waitForStatus('forever', 'stopped');
  assert.match(readFileSync(output, 'utf8'), /tick 0\n/);
  assert.equal(runtimeCommand(['delete', 'forever']).status, 0);

  // delete --force of a created one kills its waiting guest process.
  assert.equal(runtimeCommand(['create', '--bundle', bundle, 'waiting'], output).status, 0);
  const { pid } = state('waiting');
  assert.equal(runtimeCommand(['delete', '--force', 'waiting']).status, 0);
  assert.ok(!existsSync(`/proc/${pid}/cmdline`) || readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'));
});

test('bad input: a clear error in the JSON log, nothing left running or half-written', () => {
  writeFileSync(join(dir, 'script.sh'), '#!/bin/sh\necho native\n');
  writeFileSync(join(dir, 'junk.wasm'), Buffer.concat([Buffer.from('\0asm\x01\0\0\0'), Buffer.from('garbage')]));
  const cases: [string, string[], RegExp][] = [
    ['native', ['/script.sh'], /process\.args\[0\] \/script\.sh: not a WebAssembly module/],
    ['absent', ['/absent.wasm'], /process\.args\[0\] \/absent\.wasm: no such file/],
    ['junk', ['/junk.wasm'], /junk\.wasm: not a valid WebAssembly module/],
    ['empty', [], /process\.args: expected the module to run/],
  ];
  for (const [id, args, pattern] of cases) {
    const bundle = makeBundle(id, args, { 'script.sh': join(dir, 'script.sh'), 'junk.wasm': join(dir, 'junk.wasm') });
    const from = logLength();
    const created = runtimeCommand(['create', '--bundle', bundle, id]);
    assert.equal(created.status, 1, id);
    const [line, ...more] = logErrors(from);
    assert.equal(more.length, 0);
    assert.equal(line!.level, 'error');
    assert.match(line!.msg, pattern);
    assert.ok(!Number.isNaN(Date.parse(line!.time)));
    assert.match(created.stderr, pattern);
    assert.ok(!existsSync(join(root, id)), `${id}: no state left`);
    assert.deepEqual(processesMentioning(join(root, id)), [], `${id}: no guest process left`);
  }
  const unknownFlag = logLength();
  assert.equal(runtimeCommand(['create', '--bogus', 'x']).status, 1);
  assert.match(logErrors(unknownFlag)[0]!.msg, /unknown option '--bogus'/);
  const unknownContainer = logLength();
  assert.equal(runtimeCommand(['state', 'nothere']).status, 1);
  assert.match(logErrors(unknownContainer)[0]!.msg, /container nothere does not exist/);
  assert.equal(
    runtimeCommand(['delete', '--force', 'nothere']).status,
    0,
    'engines delete --force after a failed create',
  );
});

test('features and --version answer as runc does', () => {
  const features = JSON.parse(runtimeCommand(['features']).stdout) as { ociVersionMax: string };
  assert.equal(features.ociVersionMax, '1.0.2');
  assert.match(runtimeCommand(['--version']).stdout, /^roam-runtime version .*\nspec: 1\.0\.2\n$/);
});

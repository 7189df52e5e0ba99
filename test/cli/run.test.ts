import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildFixture, roam, roamInBackground, roamWithPipe, sleep, tempDir, waitForContainer } from '../helpers.js';

const { dir, cleanup } = tempDir();
let echo: { plain: string; roam: string };
before(() => {
  echo = buildFixture('echo-stdin', dir);
});
after(cleanup);

function assertOneLineError(result: { status: number | null; stderr: string; stdout: string }, pattern: RegExp): void {
  assert.notEqual(result.status, 0);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, /^roam: [^\n]+\n$/);
  assert.match(result.stderr, pattern);
}

test('roam run: missing module, invalid module, bad --dir and --env give one-line errors', () => {
  assertOneLineError(roam(['run', join(dir, 'absent.wasm')]), /absent\.wasm: no such file/);
  const junk = join(dir, 'junk.wasm');
  writeFileSync(junk, '\0asm\x01\0\0\0garbage');
  assertOneLineError(roam(['run', junk]), /not a valid WebAssembly module/);
  assertOneLineError(roam(['run', '--dir', join(dir, 'nope'), echo.plain]), /no such directory/);
  assertOneLineError(roam(['run', '--dir', junk, echo.plain]), /is not a directory/);
  assertOneLineError(roam(['run', '--env', 'NOEQUALS', echo.plain]), /expected KEY=VALUE/);
});

test('a Roam error is one line; ROAM_DEBUG=1 adds its code, its stack and its cause', () => {
  const absent = join(dir, 'absent.wasm');
  const args = ['build', absent, '-o', join(dir, 'out.wasm')];
  assertOneLineError(roam(args), /^roam: .*absent\.wasm: no such file\n$/);
  const debug = roam(args, { env: { ...process.env, ROAM_DEBUG: '1' } });
  assert.equal(debug.status, 1);
  assert.match(debug.stderr, /^roam: \[ROAM_BUILD\] BuildError: .*absent\.wasm: no such file\n {4}at /);
  assert.match(debug.stderr, /\ncaused by: Error: ENOENT: no such file or directory/);
});

test('stdin from a pipe: data arriving over time is copied in order, plain and migratable', async () => {
  const chunks = ['alpha ', 'beta\n', 'gamma ', 'delta\n'];
  for (const module of [echo.plain, echo.roam]) {
    const result = await roamWithPipe(['run', module], chunks, 30);
    assert.equal(result.stderr, '');
    assert.equal(result.stdout, `${chunks.join('')}\ntotal=${chunks.join('').length}\n`);
    assert.equal(result.status, 0);
  }
});

test('stdin from a file', () => {
  const input = join(dir, 'input.txt');
  writeFileSync(input, 'x'.repeat(100_000));
  for (const module of [echo.plain, echo.roam]) {
    const result = roam(['run', module], { stdinFile: input });
    assert.equal(result.stdout.length, 100_000 + '\ntotal=100000\n'.length);
    assert.equal(result.status, 0);
  }
});

test("roam restore removes the checkpointed run's temporary directory when the guest ends, and makes it again for another restore", async () => {
  const spin = buildFixture('spin', join(dir, 'spin'));
  // roam run makes the container's /tmp under the host's TMPDIR.
  const hostTemp = join(dir, 'host-tmp');
  const runtimeDir = join(dir, 'run');
  mkdirSync(hostTemp);
  const env = { ...process.env, TMPDIR: hostTemp, ROAM_RUNTIME_DIR: runtimeDir };
  const reference = roam(['run', spin.plain, '--', '300000000']).stdout;
  const first = roamInBackground(['run', '--name', 'tmpdir', spin.roam, '--', '300000000'], { env });
  await waitForContainer('tmpdir', runtimeDir);
  await sleep(300);
  const image = join(dir, 'tmpdir.img');
  assert.equal(roam(['checkpoint', 'tmpdir', '-o', image], { env }).status, 0);
  assert.equal((await first.done).status, 0);
  assert.equal(readdirSync(hostTemp).length, 1, 'kept after the checkpoint: the image refers to it');
  for (const attempt of ['first', 'second']) {
    const restored = roam(['restore', image], { env });
    assert.equal(restored.stdout, reference, `${attempt} restore: ${restored.stderr}`);
    assert.deepEqual(readdirSync(hostTemp), [], `${attempt} restore: removed when the guest ended`);
  }
});

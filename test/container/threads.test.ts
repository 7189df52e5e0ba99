import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildFixture, fixtures, roam, roamInBackground, tempDir, waitForContainer } from '../helpers.js';

const { dir, cleanup } = tempDir();
const runtimeDir = join(dir, 'run');
process.env.ROAM_RUNTIME_DIR = runtimeDir;
let threads: { plain: string; roam: string };
let native: string;
/**
 * Items per producer: about two seconds of work on x64 under Roam, so that a checkpoint taken as
 * soon as the container answers lands mid-run even on a loaded machine (the rest runs under qemu).
 */
const items = '24000';

before(() => {
  threads = buildFixture('threads', join(dir, 'modules'));
  native = join(dir, 'threads-native');
  const cc = spawnSync('cc', ['-O2', '-pthread', join(fixtures, 'threads.c'), '-o', native], { encoding: 'utf8' });
  assert.equal(cc.status, 0, cc.stderr);
});
after(cleanup);

function nativeRun(...args: string[]): string {
  const run = spawnSync(native, args, { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout;
}

test('green threads: a producer/consumer program prints what its native pthread build prints', () => {
  for (const n of ['1', '200']) {
    const run = roam(['run', threads.roam, '--', n]);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, nativeRun(n));
  }
});

test('green threads switched out inside malloc and fprintf: the heap and every line stay intact', () => {
  const run = roam(['run', threads.roam, '--', 'heap', '20000']);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, nativeRun('heap', '20000'));
  assert.match(run.stdout, /0 bad bytes; stdio: \d+ lines intact, 0 torn/);
});

test('green threads: the thread limit answers EAGAIN', () => {
  const run = roam(['run', threads.roam, '--', 'limit']);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, 'limit: 1023 threads started, then EAGAIN\n');
});

test('a plain module cannot start threads: EAGAIN, with one line saying why', () => {
  const run = roam(['run', threads.plain, '--', 'limit']);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, 'limit: 0 threads started, then EAGAIN\n');
  assert.match(run.stderr, /^roam: pthread_create\(\) cannot start a thread: only a module built by roam build/m);
});

for (const isa of ['s390x', 'arm64']) {
  test(`threads checkpointed mid-run on x64 (waiting on condition variables and joins) finish on ${isa}`, async () => {
    const name = `threads-${isa}`;
    const image = join(dir, `${name}.img`);
    const source = roamInBackground(['run', '--name', name, threads.roam, '--', items]);
    await waitForContainer(name, runtimeDir);
    const checkpoint = roam(['checkpoint', name, '-o', image]);
    assert.equal(checkpoint.status, 0, checkpoint.stderr);
    const first = await source.done;
    assert.equal(first.status, 0, first.stderr);
    assert.ok(!first.stdout.includes('done'), 'checkpointed before the end');
    const second = roam(['restore', image, '--isa', isa]);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(first.stdout + second.stdout, nativeRun(items));
  });
}

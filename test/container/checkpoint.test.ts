import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sendControlRequest } from '../../src/container/control.js';
import { buildFixture, roam, roamInBackground, sleep, tempDir, waitForContainer } from '../helpers.js';

const { dir, cleanup } = tempDir();
const runtimeDir = join(dir, 'run');
process.env.ROAM_RUNTIME_DIR = runtimeDir;
let journal: { plain: string; roam: string };
let spin: { plain: string; roam: string };
/** Rounds of journal.c: about 0.5 ms of compute each on x64, ten times that under qemu. */
const rounds = '3000';
const longRounds = '6000';
const expected = new Map<string, { stdout: string; stderr: string; file: string }>();

/** Output of an uninterrupted run of the plain (uninstrumented) journal. */
function reference(n: string) {
  if (!expected.has(n)) {
    const data = dataDir(`reference-${n}`);
    const run = roam(['run', '--dir', `${data}:/data`, journal.plain, '--', '/data/in.txt', '/data/out.txt', n]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /monotonic=ok/);
    expected.set(n, { stdout: run.stdout, stderr: run.stderr, file: readFileSync(join(data, 'out.txt'), 'utf8') });
  }
  return expected.get(n)!;
}

/** A data directory with the journal's input; returns its path. */
function dataDir(name: string): string {
  const data = join(dir, name);
  mkdirSync(data, { recursive: true });
  writeFileSync(
    join(data, 'in.txt'),
    Array.from({ length: 97 }, (_, i) => `line ${i} ${'x'.repeat(i % 13)}\n`).join(''),
  );
  return data;
}

before(() => {
  journal = buildFixture('journal', join(dir, 'modules'));
  spin = buildFixture('spin', join(dir, 'modules'));
});
after(cleanup);

/** Starts the journal as NAME on x64 and checkpoints it (stopping it) after `delayMs`. */
async function checkpointMidRun(name: string, data: string, image: string, delayMs: number, extra: string[] = []) {
  const source = roamInBackground([
    'run',
    '--name',
    name,
    '--dir',
    `${data}:/data`,
    journal.roam,
    '--',
    '/data/in.txt',
    '/data/out.txt',
    rounds,
  ]);
  await waitForContainer(name, runtimeDir);
  await sleep(delayMs);
  const checkpoint = roam(['checkpoint', name, '-o', image, ...extra]);
  if (checkpoint.status !== 0) {
    const run = await source.done;
    assert.fail(
      `checkpoint failed: ${checkpoint.stderr}; the program ended with ${run.status}: ${run.stderr.slice(-500)}`,
    );
  }
  assert.match(checkpoint.stderr, /MiB memory/);
  const first = await source.done;
  assert.equal(first.status, 0);
  assert.ok(!first.stdout.includes('done'), 'checkpointed before the end');
  return first;
}

for (const isa of ['arm64', 'ppc64le', 's390x']) {
  test(`checkpoint on x64 mid-run, resume on ${isa}: output and files identical to an uninterrupted run`, async () => {
    const data = dataDir(`data-${isa}`);
    const image = join(dir, `journal-${isa}.img`);
    const expected = reference(rounds);
    const first = await checkpointMidRun(`journal-${isa}`, data, image, 200, ['--archive']);
    // The destination sees the directory somewhere else: remap it.
    const moved = join(dir, `moved-${isa}`);
    cpSync(data, moved, { recursive: true });
    const second = roam(['restore', image, '--isa', isa, '--dir', `${moved}:/data`]);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(first.stdout + second.stdout, expected.stdout);
    assert.equal(first.stderr + second.stderr, expected.stderr);
    assert.equal(readFileSync(join(moved, 'out.txt'), 'utf8'), expected.file);
  });
}

test('a chain x64 -> arm64 -> s390x -> x64 of checkpoint and restore', async () => {
  const args = ['--', '600000000'];
  const reference = roam(['run', spin.plain, ...args]).stdout;
  const hops = ['arm64', 's390x', 'x64'];
  let image = join(dir, 'chain-0');
  let output = '';
  const start = roamInBackground(['run', '--name', 'chain', spin.roam, ...args]);
  await waitForContainer('chain', runtimeDir);
  await sleep(300);
  assert.equal(roam(['checkpoint', 'chain', '-o', image]).status, 0);
  output += (await start.done).stdout;
  for (const [i, isa] of hops.entries()) {
    const resumed = roamInBackground(['restore', image, '--isa', isa, '--name', 'chain']);
    if (i < hops.length - 1) {
      await waitForContainer('chain', runtimeDir, 60_000);
      await sleep(4000);
      image = join(dir, `chain-${i + 1}`);
      const checkpoint = roam(['checkpoint', 'chain', '-o', image]);
      assert.equal(checkpoint.status, 0, checkpoint.stderr);
    }
    const result = await resumed.done;
    assert.equal(result.status, 0, result.stderr);
    output += result.stdout;
  }
  assert.equal(output, reference);
});

test('checkpoints at random moments with --leave-running all resume to the same result', async () => {
  const expected = reference(longRounds);
  const data = dataDir('random');
  const source = roamInBackground([
    'run',
    '--name',
    'random',
    '--dir',
    `${data}:/data`,
    journal.roam,
    '--',
    '/data/in.txt',
    '/data/out.txt',
    longRounds,
  ]);
  await waitForContainer('random', runtimeDir);
  const images: string[] = [];
  for (let i = 0; i < 20; i++) {
    await sleep(Math.floor(Math.random() * 80));
    const image = join(dir, `random-${i}`);
    // Straight to the control socket: a `roam checkpoint` process per moment would start too slowly.
    const reply = await sendControlRequest('random', {
      op: 'checkpoint',
      image,
      leaveRunning: true,
      archive: i % 2 === 1,
    });
    if (!reply.ok) break; // the run finished first
    // Freeze the directory as it was at this checkpoint, as a migration would ship it.
    cpSync(data, `${image}.data`, { recursive: true });
    images.push(image);
  }
  const full = await source.done;
  assert.equal(full.stdout, expected.stdout);
  assert.equal(images.length, 20);
  for (const image of images) {
    const resumed = roam(['restore', image, '--dir', `${image}.data:/data`]);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.ok(expected.stdout.endsWith(resumed.stdout), `${image}: resumed output is the tail of the full output`);
    assert.equal(readFileSync(join(`${image}.data`, 'out.txt'), 'utf8'), expected.file, `${image}: output file`);
  }
});

import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Isa } from '../../src/platform/isa.js';
import { roam, roamInBackground, sleep, tempDir, waitForContainer } from '../helpers.js';
import { buildProgram, programs, roamRunArgs, runNative } from './programs.js';

const { dir, cleanup } = tempDir();
const runtimeDir = join(dir, 'run');
process.env.ROAM_RUNTIME_DIR = runtimeDir;
after(cleanup);

/**
 * Runs `name` on x64 (migratable build), checkpoints it after `delayMs` and resumes it on `isa`
 * in a copy of its working directory, as a migration would ship it; the concatenated output and
 * every result file must equal an uninterrupted native run.
 */
async function checkpointAndResume(name: string, isa: Isa, delayMs: number): Promise<void> {
  const program = programs.find((p) => p.name === name)!;
  const built = buildProgram(name);
  const reference = join(dir, `${name}-${isa}-native`);
  mkdirSync(reference, { recursive: true });
  const workload = program.prepare(reference);
  const expected = runNative(built, reference, workload);
  assert.equal(expected.status, 0, expected.stderr);

  const source = join(dir, `${name}-${isa}-source`);
  mkdirSync(source, { recursive: true });
  program.prepare(source);
  const container = `${name}-${isa}`;
  const first = roamInBackground(roamRunArgs(built.migratable, source, workload, ['--name', container]));
  await waitForContainer(container, runtimeDir, 60_000);
  await sleep(delayMs);
  const image = join(dir, `${container}.img`);
  const checkpoint = roam(['checkpoint', container, '-o', image, '--archive']);
  assert.equal(checkpoint.status, 0, `checkpoint: ${checkpoint.stderr}`);
  const before = await first.done;
  assert.equal(before.status, 0, before.stderr);

  const destination = join(dir, `${name}-${isa}-destination`);
  cpSync(source, destination, { recursive: true });
  const after = roam(['restore', image, '--isa', isa, '--dir', `${destination}:.`]);
  assert.equal(after.status, 0, after.stderr);
  assert.equal(before.stdout + after.stdout, expected.stdout.toString(), 'stdout continues exactly where it stopped');
  assert.equal(before.stderr + after.stderr, expected.stderr, 'stderr too');
  for (const file of workload.outputs) {
    assert.ok(
      readFileSync(join(destination, file)).equals(readFileSync(join(reference, file))),
      `${file} is byte-identical`,
    );
  }
}

const minutes = (n: number) => ({ timeout: n * 60_000 });
for (const isa of ['arm64', 'ppc64le', 's390x'] as const) {
  test(`SQLite workload checkpointed on x64 finishes on ${isa} with identical results`, minutes(10), () =>
    checkpointAndResume('sqlite', isa, 1500),
  );
}
test('minigzip checkpointed on x64 finishes on s390x with an identical .gz', minutes(10), () =>
  checkpointAndResume('minigzip', 's390x', 300),
);
test('Lua checkpointed on x64 finishes on arm64 with identical output', minutes(10), () =>
  checkpointAndResume('lua', 'arm64', 2000),
);

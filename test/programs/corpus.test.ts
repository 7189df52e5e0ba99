/**
 * The corpus (recipes/corpus/): unchanged real C programs built with their own build systems and
 * roam cc; each workload's output must equal a gcc build's, and three of them move to s390x.
 */
import { join } from 'node:path';
import { test } from 'node:test';
import { skipIfMissing, tempDir } from '../helpers.js';
import {
  buildsRunPrograms,
  checkpointAndResume,
  compareWithNative,
  corpusPrograms,
  wasmProgramsMissing,
} from './programs.js';

const { dir, cleanup } = tempDir();
process.env.ROAM_RUNTIME_DIR = join(dir, 'run');
test.after(cleanup);

for (const program of corpusPrograms) {
  test(
    `corpus ${program.name}: built unchanged with roam cc, output identical to gcc's`,
    { timeout: 10 * 60_000, skip: buildsRunPrograms.has(program.name) && skipIfMissing(wasmProgramsMissing()) },
    () => compareWithNative(program, dir, ['plain']),
  );
}

for (const [name, delayMs] of [
  ['bzip2', 300],
  ['mawk', 300],
  ['lz4', 300],
] as const) {
  test(`corpus ${name} checkpointed on x64 finishes on s390x with identical output`, { timeout: 10 * 60_000 }, () =>
    checkpointAndResume(corpusPrograms.find((p) => p.name === name)!, 's390x', delayMs, dir),
  );
}

import { join } from 'node:path';
import { after, test } from 'node:test';
import { tempDir } from '../helpers.js';
import { checkpointAndResume, programs } from './programs.js';

const { dir, cleanup } = tempDir();
process.env.ROAM_RUNTIME_DIR = join(dir, 'run');
after(cleanup);

const byName = (name: string) => programs.find((p) => p.name === name)!;
const minutes = (n: number) => ({ timeout: n * 60_000 });
for (const isa of ['arm64', 'ppc64le', 's390x'] as const) {
  test(`SQLite workload checkpointed on x64 finishes on ${isa} with identical results`, minutes(10), () =>
    checkpointAndResume(byName('sqlite'), isa, 1500, dir),
  );
}
test('minigzip checkpointed on x64 finishes on s390x with an identical .gz', minutes(10), () =>
  checkpointAndResume(byName('minigzip'), 's390x', 300, dir),
);
test('Lua checkpointed on x64 finishes on arm64 with identical output', minutes(10), () =>
  checkpointAndResume(byName('lua'), 'arm64', 2000, dir),
);

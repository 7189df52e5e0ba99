import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { tempDir } from '../helpers.js';
import { buildProgram, programs, runNative, runWasm } from './programs.js';

const { dir, cleanup } = tempDir();
after(cleanup);

for (const program of programs) {
  test(`${program.name}: roam cc + roam run (plain and migratable) match gcc -O2`, { timeout: 20 * 60_000 }, () => {
    const built = buildProgram(program.name);
    const runs = (['native', 'plain', 'migratable'] as const).map((form) => {
      const work = join(dir, `${program.name}-${form}`);
      mkdirSync(work, { recursive: true });
      const workload = program.prepare(work);
      const run =
        form === 'native'
          ? runNative(built, work, workload)
          : runWasm(form === 'plain' ? built.plain : built.migratable, work, workload);
      return { form, run, files: workload.outputs.map((f) => readFileSync(join(work, f))) };
    });
    const [native, ...wasm] = runs;
    assert.equal(native!.run.status, 0, native!.run.stderr);
    assert.ok(
      native!.run.stdout.length + native!.files.reduce((n, f) => n + f.length, 0) > 0,
      'the workload produces output',
    );
    for (const other of wasm) {
      assert.equal(other.run.stderr, native!.run.stderr, `${other.form}: stderr`);
      assert.equal(other.run.status, native!.run.status, `${other.form}: exit status`);
      assert.ok(other.run.stdout.equals(native!.run.stdout), `${other.form}: stdout identical`);
      for (const [i, file] of other.files.entries()) {
        assert.ok(file.equals(native!.files[i]!), `${other.form}: output file ${i} identical`);
      }
    }
  });
}

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildProgram, type Program, type Run, runNative, runWasm } from '../test/programs/programs.js';
import { geomean, median, table } from './harness.js';

/**
 * Wall time of each real program as (a) native gcc -O2, (b) plain Wasm and (c) Roam-instrumented
 * Wasm, both through `roam run` (Node start-up and compilation included), interleaved round by
 * round so that machine noise hits all three alike.
 */
export function programsBench(
  work: string,
  rounds: number,
  list: Program[],
  heading: { title: string; workloads: string },
  /** Run each program's bench-sized workload (`benchScale`) rather than the tests'. */
  scaled = false,
): string {
  const rows: (string | number)[][] = [];
  const ratios = { wasm: [] as number[], roam: [] as number[], roamNative: [] as number[] };
  for (const program of list) {
    const built = buildProgram(program.name);
    const times = { native: [] as number[], plain: [] as number[], roam: [] as number[] };
    for (let round = 0; round < rounds; round++) {
      for (const form of ['native', 'plain', 'roam'] as const) {
        const dir = join(work, `${program.name}-${form}`);
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        const workload = program.prepare(dir, scaled ? program.benchScale : 1);
        const started = performance.now();
        const run: Run =
          form === 'native'
            ? runNative(built, dir, workload)
            : runWasm(form === 'plain' ? built.plain : built.migratable, dir, workload);
        times[form].push(performance.now() - started);
        if (run.status !== 0) throw new Error(`${program.name} (${form}) failed: ${run.stderr.slice(-500)}`);
      }
    }
    const [a, b, c] = [median(times.native), median(times.plain), median(times.roam)];
    ratios.wasm.push(b / a);
    ratios.roam.push(c / b);
    ratios.roamNative.push(c / a);
    rows.push([
      program.name,
      (a / 1000).toFixed(2),
      (b / 1000).toFixed(2),
      (c / 1000).toFixed(2),
      (b / a).toFixed(2),
      (c / b).toFixed(2),
      (c / a).toFixed(2),
    ]);
    console.error(`programs: ${program.name} done`);
  }
  rows.push([
    '**geometric mean**',
    '',
    '',
    '',
    geomean(ratios.wasm).toFixed(2),
    geomean(ratios.roam).toFixed(2),
    geomean(ratios.roamNative).toFixed(2),
  ]);
  return [
    `### ${heading.title}: native, plain Wasm, Roam-instrumented Wasm`,
    '',
    `Median wall time of ${rounds} interleaved rounds. Workloads: ${heading.workloads} Targets: (c)/(b) <= 1.15 and (c)/(a) <= 1.5.`,
    '',
    table(
      ['program', '(a) native gcc -O2 (s)', '(b) plain Wasm (s)', '(c) Roam Wasm (s)', '(b)/(a)', '(c)/(b)', '(c)/(a)'],
      rows,
    ),
  ].join('\n');
}

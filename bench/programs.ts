import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  buildProgram,
  type Program,
  type Run,
  roamRunArgs,
  runNative,
  runProgram,
  type Workload,
} from '../test/programs/programs.js';
import { geomean, median, roamBin, table } from './harness.js';

/**
 * V8 flags of every Wasm run, plain and instrumented alike: TurboFan only. V8 has no on-stack
 * replacement for Wasm, so with default tiering a function that started in Liftoff may stay there
 * and the ratios would measure the tiering, not the code.
 */
export const benchTiering = ['--no-liftoff'];

/**
 * ROAM_BENCH_COMPARE=DIR: a directory of modules from another `roam build` (DIR/<name>.roam.wasm),
 * run interleaved with the others as form (d), to compare two instrumentations in one run.
 */
const compareDir = process.env.ROAM_BENCH_COMPARE;
/** ROAM_BENCH_COMPARE_ROAM=PATH: the roam CLI (dist/src/cli/main.js) that runs them (another build's modules may carry another instrumentationVersion). */
const compareRoam = process.env.ROAM_BENCH_COMPARE_ROAM ?? roamBin;

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
  const ratios = {
    wasm: [] as number[],
    roam: [] as number[],
    roamNative: [] as number[],
    size: [] as number[],
    other: [] as number[],
  };
  const other = (name: string) => (compareDir ? join(compareDir, `${name}.roam.wasm`) : undefined);
  const compared = compareDir !== undefined && list.every((p) => existsSync(other(p.name)!));
  const forms = compared ? (['native', 'plain', 'roam', 'other'] as const) : (['native', 'plain', 'roam'] as const);
  for (const program of list) {
    const built = buildProgram(program.name);
    const times = { native: [] as number[], plain: [] as number[], roam: [] as number[], other: [] as number[] };
    for (let round = 0; round < rounds; round++) {
      for (const form of forms) {
        const dir = join(work, `${program.name}-${form}`);
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        const workload = program.prepare(dir, scaled ? program.benchScale : 1);
        const module = form === 'plain' ? built.plain : form === 'roam' ? built.migratable : other(program.name)!;
        const started = performance.now();
        const run: Run =
          form === 'native'
            ? runNative(built, dir, workload)
            : runPinned(form === 'other' ? compareRoam : roamBin, module, dir, workload);
        times[form].push(performance.now() - started);
        if (run.status !== 0) throw new Error(`${program.name} (${form}) failed: ${run.stderr.slice(-500)}`);
      }
    }
    const [a, b, c] = [median(times.native), median(times.plain), median(times.roam)];
    const size = statSync(built.migratable).size / statSync(built.plain).size;
    ratios.wasm.push(b / a);
    ratios.roam.push(c / b);
    ratios.roamNative.push(c / a);
    ratios.size.push(size);
    const row = [
      program.name,
      (a / 1000).toFixed(2),
      (b / 1000).toFixed(2),
      (c / 1000).toFixed(2),
      (b / a).toFixed(2),
      (c / b).toFixed(2),
      (c / a).toFixed(2),
      size.toFixed(2),
    ];
    if (compared) {
      const d = median(times.other);
      ratios.other.push(d / b);
      row.push((d / 1000).toFixed(2), (d / b).toFixed(2));
    }
    rows.push(row);
    console.error(`programs: ${program.name} done`);
  }
  const total = [
    '**geometric mean**',
    '',
    '',
    '',
    geomean(ratios.wasm).toFixed(2),
    geomean(ratios.roam).toFixed(2),
    geomean(ratios.roamNative).toFixed(2),
    geomean(ratios.size).toFixed(2),
  ];
  if (compared) total.push('', geomean(ratios.other).toFixed(2));
  rows.push(total);
  const header = [
    'program',
    '(a) native gcc -O2 (s)',
    '(b) plain Wasm (s)',
    '(c) Roam Wasm (s)',
    '(b)/(a)',
    '(c)/(b)',
    '(c)/(a)',
    'code size (c)/(b)',
  ];
  if (compared) header.push('(d) other roam build (s)', '(d)/(b)');
  return [
    `### ${heading.title}: native, plain Wasm, Roam-instrumented Wasm`,
    '',
    `Median wall time of ${rounds} interleaved rounds. Workloads: ${heading.workloads} Both Wasm forms run with V8 flags \`${benchTiering.join(' ')}\` (tiering pinned: TurboFan only). Code size is the module's bytes. Targets: (c)/(b) <= 1.15 and (c)/(a) <= 1.5.${compared ? ` (d): the modules in ${compareDir}, built by another \`roam build\` and run by ${compareRoam}.` : ''}`,
    '',
    table(header, rows),
  ].join('\n');
}

/** `roam run` of a module with the bench's pinned tiering. */
function runPinned(roam: string, module: string, work: string, workload: Workload): Run {
  const args = [...benchTiering, roam, ...roamRunArgs(module, work, workload)];
  return runProgram(process.execPath, args, work, process.env, workload.stdin);
}

import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { median, ms, repoRoot, roamBin, roamSync, table } from './harness.js';
import { benchTiering } from './programs.js';

/** Lines the ticker prints before the checkpoint; the steady interval is the median of the later half. */
const linesBefore = 20;
/** Lines after the restore counted as "soon after" it. */
const firstAfter = 5;

/**
 * Whether a restored program runs at full speed again (issue 11): a compute loop in main
 * (bench/fixtures/ticker.c) prints a line every `steps` steps; it is checkpointed after
 * `linesBefore` lines and restored, and the intervals between lines are compared: before the
 * checkpoint, right after the restore, and later. Frames put back by a restore run twin code
 * only up to their next loop header (src/build/loop-entries.ts).
 */
export async function restoreSpeedBench(work: string, steps: number, lines: number): Promise<string> {
  mkdirSync(work, { recursive: true });
  const source = join(repoRoot, 'bench', 'fixtures', 'ticker.c');
  const module = join(work, 'ticker.wasm');
  const plain = join(work, 'ticker.plain.wasm');
  roamSync(['build', source, '-O2', '-o', module]);
  roamSync(['cc', '-O2', source, '-o', plain]);
  const plainRun = await timedLines(['run', plain, '--', String(linesBefore), String(steps)], linesBefore).ended;
  const name = `ticker-${process.pid}`;
  const image = join(work, 'image');
  const run = timedLines(['run', '--name', name, module, '--', String(lines), String(steps)], linesBefore);
  const before = await run.reached;
  roamSync(['checkpoint', name, '-o', image]);
  await run.ended;
  const restored = timedLines(['restore', image], Number.POSITIVE_INFINITY);
  const after = await restored.ended;
  const steady = median(intervals(before).slice(linesBefore / 2));
  const afterIntervals = intervals(after);
  const soon = median(afterIntervals.slice(0, firstAfter));
  const later = median(afterIntervals.slice(firstAfter));
  const plainSteady = median(intervals(plainRun).slice(linesBefore / 2));
  return [
    '## Back to full speed after a restore',
    '',
    `A compute loop in main (bench/fixtures/ticker.c, \`roam build -O2\`) prints a line every ${steps.toLocaleString('en')} steps; it is checkpointed after ${linesBefore} lines and restored with \`roam restore\` on the same node, and the time between lines is compared (medians; every run with V8 flags \`${benchTiering.join(' ')}\`, as the programs above: under default tiering a loop that started in Liftoff code stays there, since V8 has no on-stack replacement for Wasm, which would measure V8's timing rather than the code). The loop's frame is one the restore puts back: it runs resume code until its next loop header, then fast code again.`,
    '',
    table(
      ['phase', 'time per line (ms)', 'vs before the checkpoint'],
      [
        ['plain Wasm (not migratable), same loop', ms(plainSteady), (plainSteady / steady).toFixed(2)],
        ['before the checkpoint (steady)', ms(steady), '1.00'],
        [`after the restore: lines 1-${firstAfter}`, ms(soon), (soon / steady).toFixed(2)],
        [`after the restore: lines ${firstAfter + 1}-${afterIntervals.length}`, ms(later), (later / steady).toFixed(2)],
        ['restore started → first line', ms(after[0]!), ''],
      ],
    ),
  ].join('\n');
}

/** Intervals between consecutive line times. */
function intervals(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]!);
}

/**
 * Runs roam with `args`, timing each stdout line from the start: `reached` resolves once `count`
 * lines have arrived, `ended` when the process exits (with all line times).
 */
function timedLines(args: string[], count: number): { reached: Promise<number[]>; ended: Promise<number[]> } {
  const started = performance.now();
  const child = spawn(process.execPath, [...benchTiering, roamBin, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const times: number[] = [];
  let reach: (times: number[]) => void = () => {};
  const reached = new Promise<number[]>((resolve) => {
    reach = resolve;
  });
  createInterface({ input: child.stdout }).on('line', () => {
    times.push(performance.now() - started);
    if (times.length === count) reach([...times]);
  });
  const ended = new Promise<number[]>((resolve, reject) => {
    child.on('exit', (code) => (code === 0 ? resolve(times) : reject(new Error(`roam ${args[0]} exited ${code}`))));
  });
  return { reached, ended };
}

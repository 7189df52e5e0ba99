import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { buildProgram } from '../test/programs/programs.js';
import { median, ms, repoRoot, roamBin, roamSync, table } from './harness.js';
import { benchTiering } from './programs.js';

/** Lines the ticker prints before the checkpoint; the steady interval is the median of the later half. */
const linesBefore = 20;
/** Lines after the restore counted as "soon after" it. */
const firstAfter = 5;

/** One program whose restored loop is timed: how to run it plain and migratable, with its arguments. */
interface Ticker {
  label: string;
  plain: string;
  migratable: string;
  /** `roam run` options before the module (preopens). */
  options: string[];
  /** The program's arguments for `lines` lines. */
  args(lines: number): string[];
}

/**
 * Whether a restored program runs at full speed again (issue 11): a loop that runs in one frame
 * for the whole run prints a line every so many steps; it is checkpointed after `linesBefore`
 * lines and restored, and the intervals between lines are compared: before the checkpoint, right
 * after the restore, and later. Frames put back by a restore run twin code only up to their next
 * loop header (src/build/loop-entries.ts). Two programs: a C loop in main (bench/fixtures/ticker.c)
 * and Lua's interpreter running a loop at the top of a script (bench/fixtures/ticker.lua), whose
 * `luaV_execute` frame is one large function that twin code runs much slower.
 */
export async function restoreSpeedBench(work: string, steps: number, lines: number): Promise<string> {
  mkdirSync(work, { recursive: true });
  const source = join(repoRoot, 'bench', 'fixtures', 'ticker.c');
  const module = join(work, 'ticker.wasm');
  const plain = join(work, 'ticker.plain.wasm');
  roamSync(['build', source, '-O2', '-o', module]);
  roamSync(['cc', '-O2', source, '-o', plain]);
  const lua = buildProgram('lua');
  const luaSteps = Math.round(steps / 20);
  const tickers: Ticker[] = [
    {
      label: 'C loop in main (ticker.c)',
      plain,
      migratable: module,
      options: [],
      args: (n) => [String(n), String(steps)],
    },
    {
      label: 'Lua interpreter, loop at the top of a script (ticker.lua)',
      plain: lua.plain,
      migratable: lua.migratable,
      options: ['--dir', `${join(repoRoot, 'bench', 'fixtures')}:/fixtures`],
      args: (n) => ['/fixtures/ticker.lua', String(n), String(luaSteps)],
    },
  ];
  const rows: string[][] = [];
  for (const ticker of tickers) rows.push(...(await measure(ticker, lines, work)));
  return [
    '## Back to full speed after a restore',
    '',
    `A loop that runs in one frame for the whole run prints a line every so many steps (the C loop ${steps.toLocaleString('en')} steps, the Lua loop ${luaSteps.toLocaleString('en')}); it is checkpointed after ${linesBefore} lines and restored with \`roam restore\` on the same node, and the time between lines is compared (medians; every run with V8 flags \`${benchTiering.join(' ')}\`, as the programs above: under default tiering a loop that started in Liftoff code stays there, since V8 has no on-stack replacement for Wasm, which would measure V8's timing rather than the code). The loop's frame is one the restore puts back: it runs resume code until its next loop header, then fast code again (src/build/loop-entries.ts).`,
    '',
    table(['program', 'phase', 'time per line (ms)', 'vs before the checkpoint'], rows),
  ].join('\n');
}

async function measure(ticker: Ticker, lines: number, work: string): Promise<string[][]> {
  const run = (module: string, args: string[], options: string[] = []) => [
    'run',
    ...options,
    ...ticker.options,
    module,
    '--',
    ...args,
  ];
  const plainRun = await timedLines(run(ticker.plain, ticker.args(linesBefore)), linesBefore).ended;
  const name = `ticker-${process.pid}`;
  const image = join(work, 'image');
  rmSync(image, { recursive: true, force: true });
  const running = timedLines(run(ticker.migratable, ticker.args(lines), ['--name', name]), linesBefore);
  const before = await running.reached;
  roamSync(['checkpoint', name, '-o', image]);
  await running.ended;
  const restored = timedLines(['restore', image], Number.POSITIVE_INFINITY);
  const after = await restored.ended;
  rmSync(image, { recursive: true, force: true });
  const steady = median(intervals(before).slice(linesBefore / 2));
  const afterIntervals = intervals(after);
  const soon = median(afterIntervals.slice(0, firstAfter));
  const later = median(afterIntervals.slice(firstAfter));
  const plainSteady = median(intervals(plainRun).slice(linesBefore / 2));
  const label = ticker.label;
  return [
    [label, 'plain Wasm (not migratable), same loop', ms(plainSteady), (plainSteady / steady).toFixed(2)],
    [label, 'before the checkpoint (steady)', ms(steady), '1.00'],
    [label, `after the restore: lines 1-${firstAfter}`, ms(soon), (soon / steady).toFixed(2)],
    [
      label,
      `after the restore: lines ${firstAfter + 1}-${afterIntervals.length}`,
      ms(later),
      (later / steady).toFixed(2),
    ],
    [label, 'restore started → first line', ms(after[0]!), ''],
  ];
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

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { nodeCommand } from '../src/platform/foreign-node.js';
import type { Isa } from '../src/platform/isa.js';
import { median, mib, ms, type Result, repoRoot, roamBin, roamSync, stderrUntil, table } from './harness.js';

/**
 * Checkpoint time and image size against memory in use, restore-to-first-instruction on x64
 * and arm64 (qemu-user), and module compile time on both.
 */
export async function checkpointBench(work: string, sizesMiB: number[], arm64MaxMiB: number): Promise<string> {
  process.env.ROAM_RUNTIME_DIR = join(work, 'run');
  mkdirSync(work, { recursive: true });
  const hog = join(work, 'hog.roam.wasm');
  roamSync(['build', join(repoRoot, 'bench', 'fixtures', 'hog.c'), '-O2', '-o', hog]);
  const rows: (string | number)[][] = [];
  for (const size of sizesMiB) {
    const name = `hog-${size}`;
    const running = spawn(process.execPath, [roamBin, 'run', '--name', name, hog, '--', String(size), '600'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve) =>
      running.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()),
    );
    const pauses: number[] = [];
    const totals: number[] = [];
    let stored = 0;
    const image = join(work, `${name}.img`);
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      const out = roamSync(['checkpoint', name, '-o', image, '--leave-running']);
      totals.push(performance.now() - started);
      pauses.push(Number(/paused ([\d.]+) ms/.exec(out.stderr)![1]));
      stored = Number(/([\d.]+) MiB stored/.exec(out.stderr)![1]);
    }
    running.kill('SIGKILL');
    const x64 = await firstInstruction(image, 'x64');
    const arm64 = size <= arm64MaxMiB ? ms(await firstInstruction(image, 'arm64')) : 'not run';
    rows.push([
      size,
      ms(median(pauses)),
      ms(median(totals)),
      stored.toFixed(1),
      (stored / size).toFixed(2),
      ms(x64),
      arm64,
    ]);
    console.error(`checkpoint ${size} MiB done`);
  }
  const compile = [await compileTime(hog, 'x64'), await compileTime(hog, 'arm64')];
  return [
    '### Checkpoint and restore against memory in use',
    '',
    'A guest holding N MiB of live data (half random, half repetitive text) is checkpointed with `--leave-running` (median of 3); the guest is paused for the snapshot and the image write. Restore-to-first-instruction is measured from the start of the `roam restore` process (Node start-up included) to the moment the guest starts rewinding.',
    '',
    table(
      [
        'memory (MiB)',
        'guest paused (ms)',
        '`roam checkpoint` total (ms)',
        'image (MiB)',
        'image / memory',
        'restore to first instruction, x64 (ms)',
        'same, arm64 under qemu (ms)',
      ],
      rows,
    ),
    '',
    `Module compile time (\`WebAssembly.compile\` of the ${mib(readFileSync(hog).length)} MiB hog module): x64 ${ms(compile[0]!)} ms, arm64 under qemu ${ms(compile[1]!)} ms.`,
  ].join('\n');
}

async function firstInstruction(image: string, isa: Isa): Promise<number> {
  const line = await stderrUntil(
    process.execPath,
    [roamBin, 'restore', image, '--isa', isa, '--timings'],
    /first instruction at ([\d.]+) ms/,
  );
  return Number(/first instruction at ([\d.]+) ms/.exec(line)![1]);
}

/** Compile time measured inside the target ISA's Node (so qemu start-up is excluded). */
async function compileTime(module: string, isa: Isa): Promise<number> {
  const { command, args } = nodeCommand(isa);
  const script = `const b=require('fs').readFileSync(${JSON.stringify(module)});const t=performance.now();WebAssembly.compile(b).then(()=>console.log(performance.now()-t))`;
  const output = await new Promise<Result>((resolve) => {
    const child = spawn(command, [...args, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr: '' }));
  });
  return Number(output.stdout.trim());
}

import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { median, repoRoot, roamSync, table } from './harness.js';
import { stopLatencies } from './stop.js';

/** Target: a switch between green threads (half a round trip) costs at most 10 µs. */
const targetSwitchUs = 10;

/**
 * Green threads (src/engine/threads.ts): what a switch between two threads costs, next to Linux
 * threads running the same program natively, and what a stop costs with 8 threads instead of 1.
 */
export async function threadsBench(work: string, rounds: number, stops: number): Promise<string> {
  mkdirSync(work, { recursive: true });
  const source = join(repoRoot, 'bench', 'fixtures', 'switch.c');
  const module = join(work, 'switch.wasm');
  const native = join(work, 'switch-native');
  roamSync(['build', source, '-O2', '-o', module]);
  const cc = spawnSync('cc', ['-O2', '-pthread', source, '-o', native], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`cc switch.c failed: ${cc.stderr}`);

  const perRoundTrip = (output: string) => Number.parseFloat(output);
  const rows: string[][] = [];
  for (const mode of ['yield', 'condvar']) {
    const roam = median([1, 2, 3].map(() => perRoundTrip(roamSync(['run', module, '--', mode, `${rounds}`]).stdout)));
    const linux = median(
      [1, 2, 3].map(() => perRoundTrip(spawnSync(native, [mode, `${rounds}`], { encoding: 'utf8' }).stdout)),
    );
    rows.push([
      mode === 'yield' ? '`sched_yield` ping-pong' : 'mutex + condition variable ping-pong',
      (roam / 2).toFixed(2),
      (linux / 2).toFixed(2),
      (roam / linux).toFixed(2),
      roam / 2 <= targetSwitchUs ? 'met' : 'NOT met',
    ]);
  }

  const stopRows: string[][] = [];
  for (const threads of [1, 8]) {
    const latencies = await stopLatencies(module, ['switch', 'spin', `${threads}`], stops);
    stopRows.push([
      `${threads}`,
      median(latencies).toFixed(3),
      latencies[Math.floor(latencies.length * 0.9)]!.toFixed(3),
    ]);
  }
  return [
    '## Green threads',
    '',
    `bench/fixtures/switch.c: two threads hand the CPU back and forth ${rounds} times (median of 3 runs), under Roam (\`roam build -O2\`, green threads on one wasm thread) and natively (gcc -O2 -pthread, Linux threads on ${(await import('node:os')).cpus().length} cores). A switch is half a round trip.`,
    '',
    table(
      ['what', 'Roam (µs per switch)', 'Linux threads (µs)', 'Roam / Linux', `target: ≤ ${targetSwitchUs} µs`],
      rows,
    ),
    '',
    `Stopping a guest whose threads all compute (\`switch spin N\`), ${stops} times every 10 ms: the running thread unwinds at its next migration point, the others are already unwound.`,
    '',
    table(['threads', 'stop median (ms)', 'stop p90 (ms)'], stopRows),
  ].join('\n');
}

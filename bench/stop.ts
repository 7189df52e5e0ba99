import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Container, readModuleFile } from '../src/container/container.js';
import { repoRoot, roamSync, table } from './harness.js';

/** Target: a running compute loop stops within 1 ms of the request (median). */
const targetMedianMs = 1;

/**
 * How long a running guest takes to stop once asked: the time from the stop request to the guest
 * thread reporting it stopped, through the container runtime that `roam run` and agents use.
 * The guest is a tight compute loop (test/fixtures/spin.c), stopped every 10 ms, `stops` times.
 */
export async function stopBench(work: string, stops: number): Promise<string> {
  mkdirSync(work, { recursive: true });
  const module = join(work, 'spin.wasm');
  roamSync(['build', join(repoRoot, 'test', 'fixtures', 'spin.c'), '-O2', '-o', module]);
  const latencies = await stopLatencies(module, ['spin', '100000000000'], stops);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  const median = at(0.5);
  return [
    '## Stopping a running guest',
    '',
    `A compute loop (test/fixtures/spin.c, built with \`roam build -O2\`) on the container runtime's guest thread is asked to stop every 10 ms, ${stops} times, and resumed at once; the time runs from the request to the guest thread reporting it stopped at a migration point.`,
    '',
    table(
      ['median (ms)', 'p90 (ms)', 'p99 (ms)', 'max (ms)', `target: median ≤ ${targetMedianMs} ms`],
      [
        [
          median.toFixed(3),
          at(0.9).toFixed(3),
          at(0.99).toFixed(3),
          latencies.at(-1)!.toFixed(3),
          median <= targetMedianMs ? 'met' : 'NOT met',
        ],
      ],
    ),
  ].join('\n');
}

/**
 * Runs a module on the container runtime and stops it every 10 ms, `stops` times, resuming it at
 * once: each time from the request to the guest thread reporting it stopped, sorted.
 */
export async function stopLatencies(module: string, args: string[], stops: number): Promise<number[]> {
  const container = await Container.open({
    kind: 'start',
    ...(await readModuleFile(module)),
    args,
    env: {},
    preopens: [],
  });
  const latencies: number[] = [];
  try {
    for (let i = 0; i < stops; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      const requested = performance.now();
      latencies.push((await container.stop()) - requested);
      container.resume();
    }
  } finally {
    await container.terminate();
  }
  return latencies.sort((a, b) => a - b);
}

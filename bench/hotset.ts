import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MigrationResult } from '../src/agent/api.js';
import {
  agentClient,
  type Cluster,
  locateContainer,
  migrateContainer,
  startCluster,
  startOnNode,
} from '../src/cluster/cluster.js';
import { median, mib, ms, repoRoot, roamSync, table } from './harness.js';
import { inPrivateCluster, waitForReady } from './migration.js';

/** The issue's target: the longest gap between two outputs of the running program. */
const gapTargetMs = 20;

interface Run {
  hotFirst: boolean;
  result?: MigrationResult;
  /** Longest gap between consecutive ticks: over the second before the move, and across it. */
  gapBeforeMs?: number;
  gapMs?: number;
  error?: string;
}

/**
 * Post-copy of a guest with a large memory and a small hot set (bench/fixtures/hotset.c: it reads
 * and writes every page of its hot set, then prints a timestamped tick, every millisecond), x64 →
 * x64-2, with the hot set pushed first and in plain address order, interleaved in one run.
 */
export async function hotSetBench(work: string, memoryMiB: number, hotMiB: number, repeats: number): Promise<string> {
  const runs: Run[] = [];
  // Built before the cluster starts (a build of a minute or more on a loaded machine left the
  // client's kept-alive connection to a stale end: "socket hang up" on the first request).
  mkdirSync(work, { recursive: true });
  const module = join(work, 'hotset.roam.wasm');
  roamSync(['build', join(repoRoot, 'bench', 'fixtures', 'hotset.c'), '-O2', '-o', module]);
  await inPrivateCluster(
    work,
    () => startCluster(['x64', 'x64']),
    async (cluster) => {
      for (let i = 0; i < repeats; i++) {
        for (const hotFirst of i % 2 === 0 ? [false, true] : [true, false]) {
          const run = await moveOnce(cluster, module, memoryMiB, hotMiB, hotFirst, runs.length);
          runs.push(run);
          const r = run.result;
          console.error(
            `hot set ${hotFirst ? 'first' : 'in address order'}: ` +
              (r
                ? `longest gap ${ms(run.gapMs!)} ms (before the move ${ms(run.gapBeforeMs!)} ms), downtime ${ms(r.downtimeMs)} ms, ${r.postCopy?.faults} faults, hot ${mib(r.postCopy?.hotBytes ?? 0)} MiB`
                : `failed: ${run.error}`),
          );
        }
      }
    },
  );
  const rows = runs.map((run) => {
    const r = run.result;
    const order = run.hotFirst ? 'hot set first' : 'address order (before)';
    if (!r || run.gapMs === undefined) return [order, `failed: ${run.error}`, '—', '—', '—', '—', '—'];
    const post = r.postCopy;
    return [
      order,
      ms(run.gapMs),
      ms(run.gapBeforeMs!),
      ms(r.downtimeMs),
      post ? `${post.faults} (${post.faultWaitMsMean.toFixed(2)} / ${post.faultWaitMsMax.toFixed(1)})` : '—',
      post?.hotBytes ? mib(post.hotBytes) : '—',
      post ? (post.residentMs / 1000).toFixed(2) : '—',
    ];
  });
  const gaps = (hotFirst: boolean) =>
    runs.filter((r) => r.hotFirst === hotFirst && r.gapMs !== undefined).map((r) => r.gapMs!);
  const [before, after] = [gaps(false), gaps(true)];
  const verdict =
    after.length === 0
      ? 'not measured (no successful run with the hot set first)'
      : `${median(after) <= gapTargetMs ? 'met' : 'not met'}, median longest gap ${ms(median(after))} ms with the hot set first (${after.map(ms).join(', ')} ms) against ${before.length ? `${ms(median(before))} ms in address order (${before.map(ms).join(', ')} ms)` : 'no successful run in address order'}`;
  return [
    `### Post-copy with a hot set: the longest pause of the running program`,
    '',
    `The guest (bench/fixtures/hotset.c) holds ${memoryMiB} MiB and reads and writes every 4 KiB page of a ${hotMiB} MiB hot set, then prints a line with the time, every millisecond. It moves x64 → x64-2 in post-copy 1 s after it is ready; the longest gap between two consecutive lines is measured across the move (and, for reference, over the second before it). The source finds the hot set with its dirty tracker (the pages written since the migration began) and pushes it right after the guest's state, before the rest; the baseline pushes everything in address order, so the guest faults on its hot set page by page (granule by granule: 64 KiB). The two orders alternate, in one run.`,
    '',
    table(
      [
        'post-copy push',
        'longest gap across the move (ms)',
        'longest gap before (ms)',
        'downtime (ms)',
        'faults (wait ms mean / max)',
        'hot set pushed first (MiB)',
        'fully resident after (s)',
      ],
      rows,
    ),
    '',
    `**Target: post-copy at ${memoryMiB} MiB with a ${hotMiB} MiB hot set, longest gap between two outputs ≤ ${gapTargetMs} ms**: ${verdict}.`,
  ].join('\n');
}

async function moveOnce(
  cluster: Cluster,
  module: string,
  memoryMiB: number,
  hotMiB: number,
  hotFirst: boolean,
  index: number,
): Promise<Run> {
  const run: Run = { hotFirst };
  const info = await startOnNode(cluster, 'x64', module, {
    name: `hotset-${index}`,
    args: ['hotset', String(memoryMiB), String(hotMiB)],
  });
  try {
    await waitForReady(cluster, info.id, 120_000 + memoryMiB * 100);
    await sleep(1000);
    const requested = Date.now() * 1000;
    run.result = await migrateContainer(cluster, info.id, 'x64-2', { mode: 'post-copy', hotFirst });
    await sleep(1000);
    const { node } = await locateContainer(cluster, info.id);
    let log = '';
    await agentClient(cluster, node).logs(info.id, { offset: 0, follow: false }, (chunk) => (log += chunk.toString()));
    const ticks = [...log.matchAll(/^tick \d+ (\d+) /gm)].map((m) => Number(m[1]));
    const gap = (from: number, to: number) => {
      let longest = 0;
      for (let i = 1; i < ticks.length; i++)
        if (ticks[i]! > from && ticks[i - 1]! < to) longest = Math.max(longest, ticks[i]! - ticks[i - 1]!);
      return longest / 1000;
    };
    // ROAM_BENCH_GAPS=1: every gap of 8 ms or more after the request, and when it ended (to stderr).
    if (process.env.ROAM_BENCH_GAPS) {
      const long: string[] = [];
      for (let i = 1; i < ticks.length; i++)
        if (ticks[i]! - ticks[i - 1]! >= 8000 && ticks[i]! > requested)
          long.push(
            `${(ticks[i]! - ticks[i - 1]!) / 1000} ms ending at +${((ticks[i]! - requested) / 1000).toFixed(0)} ms`,
          );
      console.error(`gaps ${hotFirst}: ${long.join(', ')}`);
    }
    run.gapBeforeMs = gap(requested - 1_000_000, requested);
    run.gapMs = gap(requested, Number.POSITIVE_INFINITY);
  } catch (error) {
    run.error = (error as Error).message.split('\n')[0];
  } finally {
    try {
      const { node } = await locateContainer(cluster, info.id);
      await agentClient(cluster, node).stop(info.id);
    } catch {
      // ended
    }
  }
  return run;
}

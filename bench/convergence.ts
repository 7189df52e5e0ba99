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
import type { MigrationMode } from '../src/migrate/sender.js';
import { mib, ms, table } from './harness.js';
import { inPrivateCluster, waitForReady } from './migration.js';

interface Scenario {
  label: string;
  to: string;
  sizeMiB: number;
  mibPerS: number;
  mode: MigrationMode;
  postCopyFallback?: boolean;
}

/**
 * Pre-copy against a guest that dirties its memory about as fast as it is sent: the writer fixture
 * writing all over its memory, moved with `--mode auto` onto an emulated node (no post-copy there:
 * the final round comes at once) and onto x64-2 (there, with --post-copy-fallback, it switches to post-copy).
 * The progress lines' decisions are recorded next to the numbers.
 */
export async function convergenceBench(work: string, repeats: number): Promise<string> {
  const scenarios: Scenario[] = [
    { label: 'x64 → arm64 (qemu)', to: 'arm64', sizeMiB: 64, mibPerS: 64, mode: 'auto' },
    { label: 'x64 → x64', to: 'x64-2', sizeMiB: 64, mibPerS: 1024, mode: 'auto' },
    {
      label: 'x64 → x64, --post-copy-fallback',
      to: 'x64-2',
      sizeMiB: 64,
      mibPerS: 1024,
      mode: 'auto',
      postCopyFallback: true,
    },
  ];
  const rows: (string | number)[][] = [];
  await inPrivateCluster(
    work,
    () => startCluster(['x64', 'x64', 'arm64']),
    async (cluster, writer) => {
      for (let i = 0; i < repeats; i++) {
        for (const scenario of scenarios) {
          const { result, decisions, error } = await moveOnce(cluster, writer, scenario, rows.length);
          const line = result
            ? [
                scenario.label,
                `${scenario.sizeMiB} MiB, ${scenario.mibPerS} MiB/s`,
                result.mode,
                result.rounds.length,
                mib(result.sentBytes),
                ms(result.downtimeMs),
                (result.totalMs / 1000).toFixed(2),
                decisions.join('; ') || '—',
              ]
            : [
                scenario.label,
                `${scenario.sizeMiB} MiB, ${scenario.mibPerS} MiB/s`,
                '—',
                '—',
                '—',
                `failed: ${error}`,
                '—',
                '—',
              ];
          console.error(`convergence ${line.join(' | ')}`);
          rows.push(line);
        }
      }
    },
  );
  return [
    '### Pre-copy that cannot converge',
    '',
    'The writer fixture (bench/fixtures/writer.c) holds 64 MiB and writes one byte per 4 KiB page all over it at the rate given (64 MiB/s covers the whole memory every second; the emulated node takes about 2 s per full round), moved 0.5 s after it is ready with `--mode auto` (onto x64-2 also with `--post-copy-fallback`: pre-copy that cannot converge goes to post-copy there). Pre-copy decides after each round, from the dirty set found for the next one (policy: `decideAfterRound` in src/migrate/convergence.ts); the decisions column is what the progress output printed. Downtime: guest stopped on the source → running on the destination.',
    '',
    table(['move', 'guest', 'mode', 'rounds', 'sent (MiB)', 'downtime (ms)', 'total (s)', 'decisions'], rows),
  ].join('\n');
}

async function moveOnce(
  cluster: Cluster,
  writer: string,
  scenario: Scenario,
  index: number,
): Promise<{ result?: MigrationResult; decisions: string[]; error?: string }> {
  const info = await startOnNode(cluster, 'x64', writer, {
    name: `converge-${index}`,
    args: ['writer', String(scenario.sizeMiB), String(scenario.mibPerS)],
  });
  const decisions: string[] = [];
  try {
    await waitForReady(cluster, info.id, 120_000);
    await sleep(500);
    const result = await migrateContainer(cluster, info.id, scenario.to, {
      mode: scenario.mode,
      postCopyFallback: scenario.postCopyFallback,
      onProgress: (p) => {
        const decision = (p as { decision?: string }).decision;
        if (decision) decisions.push(decision);
      },
    });
    return { result, decisions };
  } catch (error) {
    return { decisions, error: (error as Error).message.split('\n')[0] };
  } finally {
    try {
      const { node } = await locateContainer(cluster, info.id);
      await agentClient(cluster, node).stop(info.id);
    } catch {
      // ended
    }
  }
}

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MigrationResult } from '../src/agent/api.js';
import {
  agentClient,
  type Cluster,
  clusterNode,
  locateContainer,
  migrateContainer,
  startCluster,
  startOnNode,
  stopCluster,
} from '../src/cluster/cluster.js';
import type { MigrationMode } from '../src/migrate/sender.js';
import { median, mib, ms, repoRoot, roamSync, table } from './harness.js';

interface Destination {
  node: string;
  label: string;
}

interface Run {
  destination: Destination;
  sizeMiB: number;
  rate: { label: string; mibPerS: number };
  mode: Exclude<MigrationMode, 'auto'>;
  result?: MigrationResult;
  error?: string;
  /** Something wrong after the move (e.g. the guest no longer running on the destination). */
  note?: string;
}

const x64 = { node: 'x64-2', label: 'x64 → x64' };
const arm64 = { node: 'arm64', label: 'x64 → arm64 (qemu)' };
const armVm = { node: 'arm64-vm', label: 'x64 → arm64-vm' };
const modes: Run['mode'][] = ['stop-copy', 'pre-copy', 'post-copy'];
/** Post-copy needs userfaultfd at the destination: not under qemu-user. */
const modesFor = (destination: Destination) => (destination === arm64 ? modes.filter((m) => m !== 'post-copy') : modes);

/** Targets from the issues. */
const postCopyDowntimeTargetMs = 5;
/** The post-copy target is judged on this many 1 GiB migrations (one writer moved back and forth): single runs vary 2-3x on this machine. */
const postCopyRepeats = 10;
const downtimeTargetMs = 20;
const downtimeTargetMiB = 256;
const transferTargetBytesPerS = 1e9;

/**
 * Live-migration downtime and total time against memory size and write rate, stop-copy and
 * pre-copy side by side, x64 → x64 and x64 → arm64 (qemu-user). Post-copy (x64 → x64 only: qemu-user has
 * no userfaultfd) side by side, with the time until the destination holds all of memory. One local cluster (x64, x64-2,
 * arm64) in a private cluster directory; every run starts the writer fixture on x64, waits for
 * "ready", migrates it once and stops it where it landed. Configurations are interleaved (mode
 * innermost, its order alternating) so that machine noise hits all alike.
 */
export async function migrationBench(
  work: string,
  sizesMiB: number[],
  arm64MaxMiB = 256,
  rates: { label: string; mibPerS: number }[] = [
    { label: 'low', mibPerS: 1 },
    { label: 'high', mibPerS: 64 },
  ],
): Promise<string> {
  const runs: Run[] = [];
  let repeated: number[] = [];
  await inPrivateCluster(
    work,
    () => startCluster(['x64', 'x64', 'arm64']),
    async (cluster, writer) => {
      let flip = false;
      for (const sizeMiB of sizesMiB) {
        for (const rate of rates) {
          for (const destination of sizeMiB <= arm64MaxMiB ? [x64, arm64] : [x64]) {
            const order = flip ? [...modesFor(destination)].reverse() : modesFor(destination);
            flip = !flip;
            for (const mode of order) {
              const run: Run = { destination, sizeMiB, rate, mode };
              await migrateOnce(cluster, writer, run, runs.length);
              runs.push(run);
              const r = run.result;
              console.error(
                `migration ${destination.label} ${sizeMiB} MiB ${rate.mibPerS} MiB/s ${mode}: ` +
                  (r
                    ? `downtime ${ms(r.downtimeMs)} ms (stop ${ms(r.stopCopyMs.stop)}, final round ${ms(r.stopCopyMs.finalRound)}, restore ${ms(r.stopCopyMs.restore)}), ` +
                      `total ${ms(r.totalMs)} ms, rounds ${r.rounds.map((round) => `${mib(round.bytes)} MiB/${ms(round.ms)} ms`).join(' ')}` +
                      (r.postCopy
                        ? `, post-copy ${mib(r.postCopy.missingBytes)} MiB in ${ms(r.postCopy.residentMs)} ms, ${r.postCopy.faults} faults waiting ${r.postCopy.faultWaitMsMean.toFixed(2)} ms mean`
                        : '')
                    : `failed: ${run.error}`) +
                  (run.note ? ` (${run.note})` : ''),
              );
            }
          }
        }
      }
      if (sizesMiB.includes(1024)) repeated = await repeatedPostCopy(cluster, writer, 1024, lowest(rates).mibPerS);
    },
  );
  return report(runs, sizesMiB, arm64MaxMiB, rates, repeated);
}

/** Downtimes of `postCopyRepeats` post-copy migrations of one writer of `sizeMiB`, x64 ↔ x64-2. */
async function repeatedPostCopy(cluster: Cluster, writer: string, sizeMiB: number, mibPerS: number): Promise<number[]> {
  const info = await startOnNode(cluster, 'x64', writer, {
    name: 'writer-repeated',
    args: ['writer', String(sizeMiB), String(mibPerS)],
  });
  const downtimes: number[] = [];
  try {
    await waitForReady(cluster, info.id, 120_000 + sizeMiB * 100);
    for (let i = 0; i < postCopyRepeats; i++) {
      await sleep(500);
      const result = await migrateContainer(cluster, info.id, i % 2 === 0 ? 'x64-2' : 'x64', { mode: 'post-copy' });
      downtimes.push(result.downtimeMs);
      console.error(
        `migration x64 ↔ x64 ${sizeMiB} MiB post-copy, repeat ${i + 1}: downtime ${ms(result.downtimeMs)} ms`,
      );
    }
  } catch (error) {
    console.error(`repeated post-copy stopped: ${(error as Error).message.split('\n')[0]}`);
  }
  const { node } = await locateContainer(cluster, info.id);
  await agentClient(cluster, node)
    .stop(info.id)
    .catch(() => undefined); // it may have ended
  return downtimes;
}

export class ClusterDidNotStart extends Error {}

/**
 * Runs `body` against a cluster of its own under `work` (never the user's, nor a concurrent
 * benchmark's) with the writer fixture built, and stops the cluster after. A cluster that fails to
 * start rejects with ClusterDidNotStart.
 */
export async function inPrivateCluster(
  work: string,
  start: () => Promise<Cluster>,
  body: (cluster: Cluster, writer: string) => Promise<void>,
): Promise<void> {
  mkdirSync(work, { recursive: true });
  const saved = { cluster: process.env.ROAM_CLUSTER_DIR, runtime: process.env.ROAM_RUNTIME_DIR };
  process.env.ROAM_CLUSTER_DIR = join(work, 'cluster');
  process.env.ROAM_RUNTIME_DIR = join(work, 'run');
  let cluster: Cluster | undefined;
  try {
    const writer = join(work, 'writer.roam.wasm');
    roamSync(['build', join(repoRoot, 'bench', 'fixtures', 'writer.c'), '-O2', '-o', writer]);
    cluster = await start().catch((error: Error) => {
      throw new ClusterDidNotStart(error.message.split('\n')[0]);
    });
    await body(cluster, writer);
  } finally {
    if (cluster) await stopCluster(cluster);
    restore('ROAM_CLUSTER_DIR', saved.cluster);
    restore('ROAM_RUNTIME_DIR', saved.runtime);
  }
}

/**
 * Across ISAs onto a real arm64 kernel: x64 → arm64-vm (`roam up --vm arm64`, a full-system VM under
 * TCG), post-copy against memory size, with stop-copy alongside at the sizes it finishes in
 * reasonable time. Skipped, with the reason, where the VM cannot start.
 */
export async function vmMigrationBench(work: string, postCopyMiB: number[], stopCopyMiB: number[]): Promise<string> {
  const head = '### Post-copy across ISAs onto a real arm64 kernel (x64 → arm64-vm)';
  const runs: Run[] = [];
  try {
    await inPrivateCluster(
      work,
      () => startCluster(['x64'], { vms: ['arm64'], vmMemoryMiB: 4096 }),
      async (cluster, writer) => {
        const sizes = [...new Set([...postCopyMiB, ...stopCopyMiB])].sort((a, b) => a - b);
        for (const sizeMiB of sizes) {
          for (const mode of ['post-copy', 'stop-copy'] as const) {
            if (!(mode === 'post-copy' ? postCopyMiB : stopCopyMiB).includes(sizeMiB)) continue;
            const run: Run = { destination: armVm, sizeMiB, rate: { label: 'low', mibPerS: 1 }, mode };
            await migrateOnce(cluster, writer, run, runs.length);
            runs.push(run);
            const r = run.result;
            console.error(
              `migration ${armVm.label} ${sizeMiB} MiB ${mode}: ${r ? `downtime ${ms(r.downtimeMs)} ms, total ${ms(r.totalMs)} ms` : `failed: ${run.error}`}`,
            );
          }
        }
      },
    );
  } catch (error) {
    if (!(error instanceof ClusterDidNotStart)) throw error;
    return `${head}\n\nNot run: the arm64 VM node did not start (${error.message}).`;
  }
  const rows = runs.map((run) => {
    const r = run.result;
    if (!r) return [run.sizeMiB, run.mode, `failed: ${run.error}`, '—', '—', '—'];
    const post = r.postCopy;
    return [
      run.sizeMiB,
      run.mode,
      `${ms(r.downtimeMs)}${run.note ? ` (${run.note})` : ''}`,
      `${ms(r.stopCopyMs.restore)}`,
      (r.totalMs / 1000).toFixed(1),
      post ? `${post.faults} (${post.faultWaitMsMean.toFixed(1)} / ${post.faultWaitMsMax.toFixed(0)})` : '—',
    ];
  });
  const post = runs.filter((r) => r.mode === 'post-copy' && r.result);
  const spread = post.length
    ? `post-copy downtime ${post.map((r) => `${ms(r.result!.downtimeMs)} ms at ${r.sizeMiB} MiB`).join(', ')}`
    : 'no successful post-copy run';
  return [
    head,
    '',
    "The guest (the writer fixture, 1 MiB/s of writes) starts on x64 and moves to `arm64-vm`, a full-system aarch64 VM (qemu-system-aarch64 under TCG, Debian 12's arm64 6.1 kernel, 2 vCPUs, 4 GiB) whose agent is reached through qemu's user network; qemu-user nodes have no userfaultfd, this one does. Everything on the VM's side runs emulated, so absolute times are large; what matters is how they grow with memory.",
    '',
    table(
      [
        'memory (MiB)',
        'mode',
        'downtime (ms)',
        'of it, restore on the VM (ms)',
        'fully resident after (s)',
        'post-copy faults (wait ms mean / max)',
      ],
      rows,
    ),
    '',
    `Across ISAs, ${spread}: flat in memory size (the state, not the memory, crosses while the guest is stopped; the VM's emulated restore dominates), while stop-copy's grows with it.`,
  ].join('\n');
}

/** The lowest write rate: the one the targets are judged at. */
const lowest = (rates: { label: string; mibPerS: number }[]) => rates.reduce((a, b) => (b.mibPerS < a.mibPerS ? b : a));

/** MiB with one decimal, or KiB below 1 MiB. */
const amount = (bytes: number) => (bytes >= 1 << 20 ? `${mib(bytes)} MiB` : `${Math.round(bytes / 1024)} KiB`);

function restore(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

async function migrateOnce(cluster: Cluster, writer: string, run: Run, index: number): Promise<void> {
  const name = `writer-${index}`;
  const info = await startOnNode(cluster, 'x64', writer, {
    name,
    args: ['writer', String(run.sizeMiB), String(run.rate.mibPerS)],
  });
  try {
    await waitForReady(cluster, info.id, 120_000 + run.sizeMiB * 100);
    await sleep(500); // the write rate settles
    run.result = await migrateContainer(cluster, info.id, run.destination.node, { mode: run.mode });
  } catch (error) {
    run.error = (error as Error).message.split('\n')[0];
  } finally {
    // Stop it wherever it runs now; a guest that did not survive the move shows up here.
    try {
      const { node } = await locateContainer(cluster, info.id);
      if (run.result && node.name !== run.destination.node) run.note = `runs on ${node.name} after the move`;
      await agentClient(cluster, node).stop(info.id);
    } catch (error) {
      run.note ??= `not running after the move: ${(error as Error).message.split('\n')[0]}`;
    }
  }
}

/** Polls the container's log on x64 until the writer printed "ready". */
export async function waitForReady(cluster: Cluster, id: string, timeoutMs: number): Promise<void> {
  const client = agentClient(cluster, clusterNode(cluster, 'x64'));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let log = '';
    await client.logs(id, { offset: 0, follow: false }, (chunk) => (log += chunk.toString()));
    if (log.includes('ready')) return;
    const { status, error } = await client.container(id);
    if (status !== 'starting' && status !== 'running')
      throw new Error(`the writer ended before "ready" (${status}${error ? `: ${error}` : ''}): ${log.slice(-500)}`);
    if (Date.now() > deadline) throw new Error(`the writer printed no "ready" within ${timeoutMs / 1000} s`);
    await sleep(50);
  }
}

function report(
  runs: Run[],
  sizesMiB: number[],
  arm64MaxMiB: number,
  rates: { label: string; mibPerS: number }[],
  repeated: number[],
): string {
  // Run in interleaved order; shown grouped, stop-copy and pre-copy of one configuration side by side.
  const key = (run: Run) => [run.destination === x64 ? 0 : 1, run.sizeMiB, run.rate.mibPerS, modes.indexOf(run.mode)];
  const sorted = [...runs].sort((a, b) => {
    const [ka, kb] = [key(a), key(b)];
    return ka.map((v, i) => v - kb[i]!).find((d) => d !== 0) ?? 0;
  });
  const rows = sorted.map((run) => {
    const r = run.result;
    const base = [run.destination.label, run.sizeMiB, `${run.rate.mibPerS} MiB/s (${run.rate.label})`, run.mode];
    if (!r) return [...base, '—', '—', `failed: ${run.error}`, '—', '—', '—'];
    const note = run.note ? ` (${run.note})` : '';
    const faults = r.postCopy
      ? `${r.postCopy.faults} (${r.postCopy.faultWaitMsMean.toFixed(2)} / ${r.postCopy.faultWaitMsMax.toFixed(1)})`
      : '—';
    return [
      ...base,
      r.rounds.length,
      mib(r.sentBytes),
      `${ms(r.downtimeMs)}${note}`,
      (r.totalMs / 1000).toFixed(2),
      faults,
      r.dirtyTracking,
    ];
  });
  const largest = Math.max(...sizesMiB);
  const skipped = sizesMiB.filter((s) => s > arm64MaxMiB);
  const low = lowest(rates);
  return [
    '### Live migration: downtime and total time against memory and write rate',
    '',
    `A local cluster (agents x64, x64-2 and arm64, the last under qemu-user, all on loopback) moves a running guest that holds N MiB of live data (half random, half repetitive text) and keeps dirtying it at a fixed rate (one byte per 4 KiB page, spread across the region: ${rates.map((r) => `${r.mibPerS} MiB/s ${r.label}`).join(', ')}). Each row is one migration started 0.5 s after the guest is ready; the runs went in interleaved order (per size and write rate, x64 → x64 then x64 → arm64, the modes back to back in alternating order). Post-copy runs x64 → x64 only (qemu-user has no userfaultfd): the guest runs at the destination as soon as its state arrived, and its memory follows (on faults, in 64 KiB granules, and pushed in order); its faults column counts the guest's faults on missing pages and how long one waited. Pre-copy goes to its final stop-copy round once a round is small or no longer shrinks enough (policy in \`src/migrate/sender.ts\`); the rounds column counts that final round too. Tracking is how the source found the pages written between rounds. Downtime runs from the guest stopping on the source to it running on the destination; fully resident after: from the migration request until the destination holds all of the guest's memory (for stop-copy and pre-copy, when it runs there; for post-copy, when the last page arrived). ${skipped.length ? `x64 → arm64 runs only up to ${arm64MaxMiB} MiB (qemu-user is about 10x slower): ${skipped.join(', ')} MiB were not run there.` : `x64 → arm64 runs only up to ${arm64MaxMiB} MiB (qemu-user is about 10x slower).`}`,
    '',
    table(
      [
        'destination',
        'memory (MiB)',
        'write rate',
        'mode',
        'rounds',
        'sent (MiB)',
        'downtime (ms)',
        'fully resident after (s)',
        'post-copy faults (wait ms mean / max)',
        'tracking',
      ],
      rows,
    ),
    '',
    postCopyVerdict(runs, low, largest, repeated),
    '',
    downtimeVerdict(runs, low, largest),
    '',
    transferVerdict(runs, largest),
  ].join('\n');
}

function postCopyVerdict(
  runs: Run[],
  low: { label: string; mibPerS: number },
  largest: number,
  repeated: number[],
): string {
  const post = runs.filter((r) => r.destination === x64 && r.mode === 'post-copy' && r.rate === low && r.result);
  const head = `**Target: post-copy downtime ≤ ${postCopyDowntimeTargetMs} ms independent of memory size (x64 → x64 at 1 GiB)**`;
  const at = post.find((r) => r.sizeMiB === 1024);
  if (!at?.result)
    return `${head}: not measured in this run (no successful post-copy x64 → x64 run at 1024 MiB; largest size ${largest} MiB).`;
  const r = at.result;
  const bySize = post.map((p) => `${ms(p.result!.downtimeMs)} ms at ${p.sizeMiB} MiB`).join(', ');
  const rest = r.downtimeMs - r.stopCopyMs.finalRound - r.stopCopyMs.restore;
  // Judged on the median of the table's run and the repeated ones, where there are any.
  const all = [r.downtimeMs, ...repeated];
  const typical = median(all);
  const within = all.filter((d) => d <= postCopyDowntimeTargetMs).length;
  const spread = repeated.length
    ? `median ${ms(typical)} ms over ${all.length} migrations at 1 GiB and ${low.mibPerS} MiB/s (${ms(Math.min(...all))}-${ms(Math.max(...all))} ms, ${within} of ${all.length} within ${postCopyDowntimeTargetMs} ms); in the table `
    : '';
  return (
    `${head}: ${typical <= postCopyDowntimeTargetMs ? 'met' : 'not met'}, ${spread}${ms(r.downtimeMs)} ms at 1 GiB and ${low.mibPerS} MiB/s (${bySize}; ` +
    `from the stop until the state was sent ${ms(r.stopCopyMs.finalRound)} ms, restore on the destination ${ms(r.stopCopyMs.restore)} ms, the state's transit and the Running answer's ${ms(rest)} ms). ` +
    `Memory followed in ${ms(r.postCopy!.residentMs)} ms (${(r.postCopy!.missingBytes / (r.postCopy!.residentMs / 1000) / 1e9).toFixed(2)} GB/s) while the guest ran.`
  );
}

function downtimeVerdict(runs: Run[], low: { label: string; mibPerS: number }, largest: number): string {
  const candidates = runs.filter((r) => r.destination === x64 && r.mode === 'pre-copy' && r.rate === low && r.result);
  const at =
    candidates.find((r) => r.sizeMiB === downtimeTargetMiB) ??
    candidates.filter((r) => r.sizeMiB <= downtimeTargetMiB).at(-1) ??
    candidates.at(-1);
  const head = `**Target: pre-copy downtime ≤ ${downtimeTargetMs} ms at ${downtimeTargetMiB} MiB with a low write rate (x64 → x64)**`;
  if (!at?.result) return `${head}: not measured (no successful pre-copy x64 → x64 run at ${low.mibPerS} MiB/s).`;
  const r = at.result;
  const rest = r.downtimeMs - r.stopCopyMs.finalRound - r.stopCopyMs.restore;
  const parts =
    `final round ${ms(r.stopCopyMs.finalRound)} ms for ${amount(r.rounds.at(-1)?.bytes ?? 0)} of pages plus the guest state, restore on the destination ${ms(r.stopCopyMs.restore)} ms, ` +
    `${ms(rest)} ms the state's transit and the Running answer; stopping the guest took ${ms(r.stopCopyMs.stop)} ms before that and is not counted, as the guest runs until it stops`;
  const measured = `${ms(r.downtimeMs)} ms at ${at.sizeMiB} MiB and ${low.mibPerS} MiB/s after ${r.rounds.length - 1} pre-copy rounds (${parts})`;
  if (at.sizeMiB !== downtimeTargetMiB) {
    return `${head}: not measured in this run (largest size ${largest} MiB); the nearest, ${measured}, ${r.downtimeMs <= downtimeTargetMs ? 'is within' : 'already exceeds'} the bound.`;
  }
  return `${head}: ${r.downtimeMs <= downtimeTargetMs ? 'met' : 'not met'}, ${measured}.`;
}

function transferVerdict(runs: Run[], largest: number): string {
  const head = `**Target: transfer rate ≥ ${transferTargetBytesPerS / 1e9} GB/s on loopback**`;
  const sample = runs.filter(
    (r) => r.destination === x64 && r.mode === 'stop-copy' && r.sizeMiB === largest && r.result,
  );
  if (sample.length === 0) return `${head}: not measured (no successful stop-copy x64 → x64 run at ${largest} MiB).`;
  // The stop-copy round carries all of memory while the guest is stopped: bytes of that round over
  // report.stopCopyMs.finalRound (guest stopped -> round acknowledged by the destination, log and
  // state written to the socket; capturing the state included). sentBytes / totalMs is end to end (connecting, start-up of
  // the receiving side, restore and commit included).
  const gbps = (bytes: number, msValue: number) => bytes / (msValue / 1000) / 1e9;
  const finalRound = sample.map((s) => gbps(s.result!.rounds.at(-1)!.bytes, s.result!.stopCopyMs.finalRound));
  const endToEnd = sample.map((s) => gbps(s.result!.sentBytes, s.result!.totalMs));
  const rate = median(finalRound);
  const list = (values: number[]) => values.map((v) => v.toFixed(2)).join(', ');
  return (
    `${head}: ${rate >= transferTargetBytesPerS / 1e9 ? 'met' : 'not met'}, ${rate.toFixed(2)} GB/s (1 GB = 10^9 bytes). Computed from the stop-copy x64 → x64 runs at ${largest} MiB ` +
    `(${sample.map((s) => `${s.rate.mibPerS} MiB/s`).join(', ')}): memory bytes of the stop-copy round divided by \`stopCopyMs.finalRound\`, the time from the guest stopping until the destination acknowledged that round and the log and state were handed to the socket (capturing the guest state included), median of ${list(finalRound)} GB/s. ` +
    `End to end (all bytes sent / total migration time, connection set-up, restore and commit included) the same runs reach ${list(endToEnd)} GB/s.`
  );
}

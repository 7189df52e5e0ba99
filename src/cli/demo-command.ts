import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { MigrationResult } from '../agent/api.js';
import {
  type Cluster,
  followLogs,
  loadCluster,
  locateContainer,
  migrateContainer,
  startCluster,
  startOnNode,
  stopCluster,
} from '../cluster/cluster.js';
import { hasCode } from '../platform/errors.js';
import { type Isa, isas } from '../platform/isa.js';
import { cacheDir, packageRoot } from '../platform/paths.js';
import { parsePositiveInt, UserError } from './options.js';
import { mib, textTable } from './table.js';

const cli = fileURLToPath(new URL('./main.js', import.meta.url));
const route: Isa[] = ['x64', 'arm64', 'ppc64le', 's390x', 'armv7l', 'x64'];
/** A progress line every this many primes: several per hop even on an emulated node. */
const progressEvery = 25_000;

function roam(args: string[], capture = false): string {
  const run = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'],
  });
  if (run.status !== 0) throw new UserError(`roam ${args[0]} failed (exit ${run.status})`);
  return run.stdout ?? '';
}

/** The cluster to demo on: the one that is up if it has every ISA, else a new one (stopped after). */
async function demoCluster(): Promise<{ cluster: Cluster; ours: boolean }> {
  try {
    const cluster = loadCluster();
    const missing = route.filter((isa) => !cluster.nodes.some((n) => n.name === isa));
    if (missing.length > 0) throw new UserError(`the cluster that is up lacks ${missing.join(', ')}: roam down first`);
    return { cluster, ours: false };
  } catch (error) {
    if (!hasCode(error, 'ROAM_CLUSTER_NOT_UP')) throw error;
  }
  console.log(`== starting a local cluster: ${Object.keys(isas).join(', ')} (foreign ISAs under qemu-user)`);
  const cluster = await startCluster(Object.keys(isas) as Isa[], {
    onNode: (node) => console.log(`   ${node.name} is up at ${node.url}`),
  });
  return { cluster, ours: true };
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('Live-migrate a running program around every ISA of a local cluster and back, and report each hop')
    .option('--n <number>', 'count primes up to this number (more: a longer run)', parsePositiveInt, 30_000_000)
    .option('--hop-seconds <s>', 'how long the program runs on each node before it moves on', parsePositiveInt, 3)
    .action(async (opts: { n: number; hopSeconds: number }) => {
      const work = cacheDir('demo');
      mkdirSync(work, { recursive: true });
      const module = join(work, 'primes.wasm');
      if (!existsSync(module)) {
        console.log('== building examples/primes.c into a migratable module (roam build)');
        roam(['build', join(packageRoot, 'examples', 'primes.c'), '-O2', '-o', module]);
      }
      const { cluster, ours } = await demoCluster();
      try {
        const info = await startOnNode(cluster, 'x64', module, {
          args: ['primes', String(opts.n), String(progressEvery)],
        });
        console.log(`== container ${info.id} runs primes ${opts.n} on x64; its output follows it from node to node:`);
        const following = follow(cluster, info.id);
        const hops: MigrationResult[] = [];
        for (let i = 1; i < route.length; i++) {
          await sleep(opts.hopSeconds * 1000);
          const status = (await locateContainer(cluster, info.id)).info.status;
          if (status !== 'running')
            throw new UserError(`the program ended (${status}) before hop ${i}: use a larger --n`);
          const result = await migrateContainer(cluster, info.id, route[i]!, { mode: 'pre-copy' });
          hops.push(result);
          console.log(
            `   -- moved ${result.from} -> ${result.to}: downtime ${result.downtimeMs.toFixed(1)} ms, total ${(result.totalMs / 1000).toFixed(2)} s`,
          );
        }
        const output = await following;
        console.log('== checking against an uninterrupted run on this machine');
        const expected = roam(['run', '--argv0', 'primes', module, '--', String(opts.n), String(progressEvery)], true);
        const same = output === expected;
        console.log('');
        console.log(
          textTable(
            ['HOP', 'FROM', 'TO', 'MODE', 'ROUNDS', 'SENT', 'TRACKING', 'DOWNTIME', 'TOTAL'],
            hops.map((h, i) => [
              i + 1,
              h.from,
              h.to,
              h.mode,
              h.rounds.length,
              mib(h.sentBytes),
              h.dirtyTracking,
              `${h.downtimeMs.toFixed(1)} ms`,
              `${(h.totalMs / 1000).toFixed(2)} s`,
            ]),
          ),
        );
        console.log(`\noutput identical to an uninterrupted run: ${same ? 'yes' : 'NO'}`);
        if (!same) process.exitCode = 1;
      } finally {
        if (ours) await stopCluster(cluster);
      }
    });
}

/** Prints the container's output as it comes, across migrations; resolves with all of it once it ends. */
async function follow(cluster: Cluster, id: string): Promise<string> {
  let text = '';
  await followLogs(cluster, id, true, (chunk, node) => {
    text += chunk.toString('utf8');
    process.stdout.write(chunk.toString('utf8').replace(/^(?=.)/gm, `   [${node.name}] `));
  });
  return text;
}

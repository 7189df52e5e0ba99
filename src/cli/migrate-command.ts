import type { Command } from 'commander';
import type { MigrationResult } from '../agent/api.js';
import { loadCluster, migrateContainer } from '../cluster/cluster.js';
import { type MigrationMode, type MigrationProgress, migrationModes } from '../migrate/sender.js';
import { parsePositiveInt, UserError } from './options.js';
import { mib } from './table.js';

export function describeProgress(p: MigrationProgress): string {
  const round = p.round === undefined ? '' : ` round ${p.round}`;
  return `${p.phase}${round}: ${mib(p.sentBytes)} sent (memory ${mib(p.memoryBytes)})`;
}

export function describeResult(id: string, r: MigrationResult): string {
  const rounds = r.mode === 'pre-copy' ? `, ${r.rounds.length} rounds` : '';
  return (
    `migrated ${id} from ${r.from} to ${r.to} (${r.mode}${rounds}, ${mib(r.sentBytes)} sent, dirty tracking: ${r.dirtyTracking}): ` +
    `downtime ${r.downtimeMs.toFixed(1)} ms, total ${(r.totalMs / 1000).toFixed(2)} s`
  );
}

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('Move a running container to another node while it keeps running')
    .argument('<id>', 'container ID or name')
    .requiredOption('--to <node>', 'destination node')
    .option('--mode <mode>', `${migrationModes.join('|')}`, 'auto')
    .option('--max-rounds <n>', 'pre-copy: at most this many rounds before the final stop', parsePositiveInt)
    .option('--json', 'print the result as JSON')
    .action(async (id: string, opts: { to: string; mode: string; maxRounds?: number; json?: boolean }) => {
      if (!migrationModes.includes(opts.mode as MigrationMode)) throw new UserError(`--mode ${opts.mode}: expected one of ${migrationModes.join(', ')}`);
      const cluster = loadCluster();
      const tty = process.stderr.isTTY;
      const result = await migrateContainer(cluster, id, opts.to, {
        mode: opts.mode as MigrationMode,
        maxRounds: opts.maxRounds,
        onProgress: (p) => process.stderr.write(tty ? `\r\x1b[K${describeProgress(p)}` : `${describeProgress(p)}\n`),
      });
      if (tty) process.stderr.write('\r\x1b[K');
      process.stdout.write(opts.json ? `${JSON.stringify(result, null, 1)}\n` : `${describeResult(id, result)}\n`);
    });
}

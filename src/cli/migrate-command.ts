import type { Command } from 'commander';
import type { MigrationResult } from '../agent/api.js';
import { loadCluster, migrateContainer } from '../cluster/cluster.js';
import { type MigrationMode, type MigrationProgress, migrationModes } from '../migrate/sender.js';
import { parsePositiveInt, UserError } from './options.js';
import { mib } from './table.js';

export function describeProgress(p: MigrationProgress): string {
  const round = p.round === undefined ? '' : ` round ${p.round}`;
  const decision = p.decision ? `; ${p.decision}` : '';
  return `${p.phase}${round}: ${mib(p.sentBytes)} sent (memory ${mib(p.memoryBytes)})${decision}`;
}

export function describeResult(id: string, r: MigrationResult): string {
  const rounds = r.rounds.length > 1 ? `, ${r.rounds.length} rounds` : '';
  const post = r.postCopy;
  const residency = post
    ? `; then ${mib(post.missingBytes)} followed in ${(post.residentMs / 1000).toFixed(2)} s ` +
      `(${post.hotBytes ? `hot set of ${mib(post.hotBytes)} pushed first, ` : ''}${post.faults} faults, ${mib(post.requestedBytes)} asked for, wait mean ${post.faultWaitMsMean.toFixed(2)} ms, max ${post.faultWaitMsMax.toFixed(1)} ms)`
    : '';
  return (
    `migrated ${id} from ${r.from} to ${r.to} (${r.mode}${rounds}, ${mib(r.sentBytes)} sent, dirty tracking: ${r.dirtyTracking}): ` +
    `downtime ${r.downtimeMs.toFixed(1)} ms${residency}, total ${(r.totalMs / 1000).toFixed(2)} s`
  );
}

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('Move a running container to another node while it keeps running')
    .argument('<id>', 'container ID or name')
    .requiredOption('--to <node>', 'destination node')
    .option(
      '--mode <mode>',
      `${migrationModes.join('|')}: post-copy runs the guest at the destination at once and fetches its memory after ` +
        '(needs userfaultfd there; the container is lost if the source dies meanwhile); pre-post sends one pre-copy round first; ' +
        'auto picks stop-copy below 8 MiB, pre-post from 128 MiB where the destination can, else pre-copy',
      'auto',
    )
    .option('--max-rounds <n>', 'pre-copy: at most this many rounds before the final stop', parsePositiveInt)
    .option(
      '--post-copy-fallback',
      'pre-copy (also as auto picks it) that cannot converge goes to post-copy instead of a final round, where the destination can ' +
        '(the container is lost if the source dies meanwhile)',
    )
    .option('--json', 'print the result as JSON')
    .action(
      async (
        id: string,
        opts: { to: string; mode: string; maxRounds?: number; postCopyFallback?: boolean; json?: boolean },
      ) => {
        if (!migrationModes.includes(opts.mode as MigrationMode))
          throw new UserError(`--mode ${opts.mode}: expected one of ${migrationModes.join(', ')}`);
        const cluster = loadCluster();
        const tty = process.stderr.isTTY;
        const result = await migrateContainer(cluster, id, opts.to, {
          mode: opts.mode as MigrationMode,
          maxRounds: opts.maxRounds,
          postCopyFallback: opts.postCopyFallback,
          onProgress: (p) => process.stderr.write(tty ? `\r\x1b[K${describeProgress(p)}` : `${describeProgress(p)}\n`),
        });
        if (tty) process.stderr.write('\r\x1b[K');
        process.stdout.write(opts.json ? `${JSON.stringify(result, null, 1)}\n` : `${describeResult(id, result)}\n`);
      },
    );
}

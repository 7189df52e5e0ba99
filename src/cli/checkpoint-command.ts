import { resolve } from 'node:path';
import type { Command } from 'commander';
import { sendControlRequest } from '../container/control.js';
import { UserError } from './options.js';

export function registerCheckpoint(program: Command): void {
  program
    .command('checkpoint')
    .description('Checkpoint a running program started with roam run --name NAME')
    .argument('<name>', 'the container name')
    .requiredOption('-o, --output <image>', 'image to write (a directory, or a single file with --archive)')
    .option('--leave-running', 'let the program continue after the checkpoint')
    .option('--archive', 'write a single-file archive instead of a directory')
    .action(async (name: string, opts: { output: string; leaveRunning?: boolean; archive?: boolean }) => {
      const reply = await sendControlRequest(name, {
        op: 'checkpoint',
        image: resolve(opts.output),
        leaveRunning: opts.leaveRunning ?? false,
        archive: opts.archive ?? false,
      });
      if (!reply.ok) throw new UserError(reply.error);
      const mib = (n: number) => (n / 1048576).toFixed(1);
      process.stderr.write(
        `roam checkpoint: ${opts.output}: ${mib(reply.memoryBytes)} MiB memory, ${mib(reply.storedBytes)} MiB stored, paused ${reply.pauseMs.toFixed(1)} ms${opts.leaveRunning ? '' : '; the program is stopped'}\n`,
      );
    });
}

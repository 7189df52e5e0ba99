import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Command } from 'commander';
import { Container, readModuleFile, remapPreopens } from '../container/container.js';
import { checkName } from '../container/control-protocol.js';
import { runHere } from '../container/run-here.js';
import { ownTemporaryDirectory } from '../container/temporary-directory.js';
import { Image } from '../image/image.js';
import { nodeCommand } from '../platform/foreign-node.js';
import { hostIsa, type Isa, isas, isIsa } from '../platform/isa.js';
import type { Preopen } from '../wasi/sandbox.js';
import { collect, UserError } from './options.js';
import { parseDir } from './run-command.js';

interface RestoreOptions {
  isa?: string;
  dir: string[];
  name?: string;
  module?: string;
  timings?: boolean;
}

export function registerRestore(program: Command): void {
  program
    .command('restore')
    .description('Resume a checkpointed program, here or on a foreign ISA under qemu-user')
    .argument('<image>', 'checkpoint image (directory or archive)')
    .option('--isa <isa>', `run on this ISA (${Object.keys(isas).join('|')}); default: this machine's`)
    .option('--dir <host[:guest]>', 'remap a preopened directory (repeatable)', collect, [])
    .option('--name <name>', 'make the resumed program addressable (roam checkpoint NAME)')
    .option('--module <wasm>', 'use this module instead of the copy inside the image (must match)')
    .option('--timings', 'report on stderr how long the restore took, up to the first guest instruction')
    .action(async (imagePath: string, opts: RestoreOptions) => {
      if (opts.isa !== undefined && !isIsa(opts.isa))
        throw new UserError(`--isa ${opts.isa}: expected one of ${Object.keys(isas).join(', ')}`);
      if (opts.name) checkName(opts.name);
      const remap = opts.dir.map(parseDir);
      const isa = (opts.isa ?? hostIsa()) as Isa;
      if (isa !== hostIsa()) {
        // Refuse a damaged image here, before an emulated Node even starts.
        Image.open(imagePath);
        process.exitCode = await restoreElsewhere(
          isa,
          process.argv.slice(2).filter((_, i, all) => !isIsaOption(all, i)),
        );
        return;
      }
      const image = Image.open(imagePath);
      if (image.isContainer) {
        if (opts.module) throw new UserError('--module: the image holds a container of several processes');
        const temporary = ownTemporaryDirectory(image.processes[0]?.state(), remap);
        const { restoreSpecImage } = await import('./run-spec.js');
        const remapped = (preopens: Preopen[]) => remapPreopens(preopens, remap);
        process.exitCode = await restoreSpecImage(image, remapped, { name: opts.name, temporary });
        return;
      }
      const verified = performance.now();
      const module = opts.module ? (await readModuleFile(opts.module)).module : undefined;
      const temporary = ownTemporaryDirectory(image.state(), remap);
      const { container, resumedAt } = await Container.restore(image.guest, remap, { module });
      if (opts.timings) {
        // performance.now() counts from this process's start.
        const ms = (t: number) => `${t.toFixed(1)} ms`;
        const mib = (image.guest.manifest.memory.bytes / 1048576).toFixed(0);
        process.stderr.write(
          `roam restore: image verified at ${ms(verified)}, first instruction at ${ms(resumedAt)} (${hostIsa()}, ${mib} MiB)\n`,
        );
      }
      process.exitCode = await runHere(container, opts.name);
      // Kept when this run was checkpointed again: that image refers to it.
      if (temporary && !container.checkpointed) rmSync(temporary, { recursive: true, force: true });
    });
}

/** True for `--isa X` / `--isa=X` tokens (dropped when re-running the command on the target ISA). */
function isIsaOption(args: string[], i: number): boolean {
  return args[i] === '--isa' || args[i]!.startsWith('--isa=') || (i > 0 && args[i - 1] === '--isa');
}

/** Re-runs this restore with the target ISA's Node under qemu-user, passing stdio straight through. */
function restoreElsewhere(isa: Isa, args: string[]): Promise<number> {
  const { command, args: prefix } = nodeCommand(isa);
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...prefix, process.argv[1]!, ...args], { stdio: 'inherit' });
    // Stopping this process stops the emulated one too.
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, forward);
    child.on('error', (error) =>
      reject(new UserError(`cannot start Node for ${isa}: ${error.message}`, { cause: error })),
    );
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? osConstants.signals[signal] : 0)));
  });
}

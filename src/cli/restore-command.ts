import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { Container } from '../container/container.js';
import { checkName } from '../container/control-protocol.js';
import { Image } from '../image/image.js';
import { nodeCommand } from '../platform/foreign-node.js';
import { type Isa, hostIsa, isIsa, isas } from '../platform/isa.js';
import { collect, UserError } from './options.js';
import { parseDir } from './run-command.js';

interface RestoreOptions {
  isa?: string;
  dir: string[];
  name?: string;
  module?: string;
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
    .action(async (imagePath: string, opts: RestoreOptions) => {
      if (opts.isa !== undefined && !isIsa(opts.isa)) throw new UserError(`--isa ${opts.isa}: expected one of ${Object.keys(isas).join(', ')}`);
      if (opts.name) checkName(opts.name);
      const remap = opts.dir.map(parseDir);
      // Verify the image (structure, version, checksums) before anything runs, on any ISA.
      const image = Image.open(imagePath);
      const module = opts.module ? new Uint8Array(readFileSync(opts.module)) : undefined;
      const isa = (opts.isa ?? hostIsa()) as Isa;
      if (isa !== hostIsa()) {
        process.exitCode = await restoreElsewhere(isa, process.argv.slice(2).filter((_, i, all) => !isIsaOption(all, i)));
        return;
      }
      const container = await Container.restore(image, remap, { module });
      process.exitCode = await container.run({ name: opts.name });
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
    child.on('error', (error) => reject(new UserError(`cannot start Node for ${isa}: ${error.message}`)));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

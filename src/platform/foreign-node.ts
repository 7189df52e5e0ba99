import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RoamError } from './errors.js';
import { foreignNodeVersion, hostIsa, type Isa, isas } from './isa.js';
import { cacheDir } from './paths.js';

/** The Node binary or the runtime libraries for a foreign ISA are missing: scripts/setup installs them. */
export class ForeignNodeError extends RoamError {
  readonly code = 'ROAM_FOREIGN_NODE';
}

/** Where scripts/setup unpacks the official Node binary for `isa`. */
export function foreignNodePath(isa: Isa): string {
  return cacheDir('node', `${isa}-${foreignNodeVersion}`, 'bin', 'node');
}

export interface NodeCommand {
  command: string;
  args: string[];
}

const inheritedCommandVariable = 'ROAM_NODE_COMMAND';

/** Environment for a process started with `command`, so that it can start more of its kind. */
export function nodeCommandEnv(command: NodeCommand): NodeJS.ProcessEnv {
  return { ...process.env, [inheritedCommandVariable]: JSON.stringify(command) };
}

/** True when this Node runs under qemu-user (it was started with an emulator command). */
export function runsEmulated(): boolean {
  return nodeCommand(hostIsa()).command !== process.execPath;
}

/**
 * The command that runs Node on `isa` on this machine: this Node for the host ISA, the cached
 * foreign binary under qemu-user otherwise.
 */
export function nodeCommand(isa: Isa): NodeCommand {
  if (isa === hostIsa()) {
    // An emulated Node cannot exec itself (no binfmt_misc here): it was told how it was started.
    const inherited = process.env[inheritedCommandVariable];
    return inherited ? (JSON.parse(inherited) as NodeCommand) : { command: process.execPath, args: [] };
  }
  const node = foreignNodePath(isa);
  if (!existsSync(node)) throw new ForeignNodeError(`no Node binary for ${isa} at ${node}: run scripts/setup`);
  const { qemu, sysroot } = isas[isa];
  if (!existsSync(join(sysroot, 'lib')))
    throw new ForeignNodeError(`no ${isa} runtime libraries in ${sysroot}: run scripts/setup`);
  return { command: qemu, args: ['-L', sysroot, node] };
}

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir } from './paths.js';
import { type Isa, foreignNodeVersion, hostIsa, isas } from './isa.js';

export class ForeignNodeError extends Error {}

/** Where scripts/setup unpacks the official Node binary for `isa`. */
export function foreignNodePath(isa: Isa): string {
  return cacheDir('node', `${isa}-${foreignNodeVersion}`, 'bin', 'node');
}

/**
 * The command that runs Node on `isa` on this machine: this Node for the host ISA, the cached
 * foreign binary under qemu-user otherwise.
 */
export function nodeCommand(isa: Isa): { command: string; args: string[] } {
  if (isa === hostIsa()) return { command: process.execPath, args: [] };
  const node = foreignNodePath(isa);
  if (!existsSync(node)) throw new ForeignNodeError(`no Node binary for ${isa} at ${node}: run scripts/setup`);
  const { qemu, sysroot } = isas[isa];
  if (!existsSync(join(sysroot, 'lib'))) throw new ForeignNodeError(`no ${isa} runtime libraries in ${sysroot}: run scripts/setup`);
  return { command: qemu, args: ['-L', sysroot, node] };
}

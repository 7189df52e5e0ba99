import type { Command } from 'commander';
import { type ContainerInfo, terminalStatuses } from '../agent/api.js';
import type { AgentError } from '../agent/client.js';
import type { NodeFacts } from '../agent/facts.js';
import {
  askEveryNode,
  type Cluster,
  followLogs,
  loadCluster,
  startCluster,
  stopCluster,
  stopContainer,
  unreachable,
} from '../cluster/cluster.js';
import { type Isa, isas, isIsa } from '../platform/isa.js';
import { isVmIsa, type VmIsa, vmIsas } from '../vm/arm64-vm.js';
import { parsePositiveInt, UserError } from './options.js';
import { mib, textTable } from './table.js';

export function parseIsaList(value: string): Isa[] {
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw new UserError('--isa: expected a comma-separated list of ISAs');
  for (const isa of list)
    if (!isIsa(isa)) throw new UserError(`--isa ${isa}: expected one of ${Object.keys(isas).join(', ')}`);
  return list as Isa[];
}

export function parseVmList(value: string): VmIsa[] {
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw new UserError(`--vm: expected ${vmIsas.join(' or ')}`);
  for (const isa of list)
    if (!isVmIsa(isa)) throw new UserError(`--vm ${isa}: only ${vmIsas.join(', ')} can run as a full-system VM`);
  return list as VmIsa[];
}

export function registerClusterCommands(program: Command): void {
  program
    .command('up')
    .description('Start a local cluster on loopback: the gateway and one agent per ISA (foreign ISAs under qemu-user)')
    .option(
      '--isa <list>',
      'comma-separated ISAs; a repeated ISA gets a suffix (x64,x64 -> x64, x64-2)',
      Object.keys(isas).join(','),
    )
    .option(
      '--vm <isa>',
      'also a full-system VM node with a real kernel, named ISA-vm (arm64 only: qemu-system-aarch64; build its image with scripts/vm-image)',
    )
    .option('--vm-memory <MiB>', "the VM node's memory", parsePositiveInt, 3072)
    .action(async (opts: { isa: string; vm?: string; vmMemory: number }) => {
      const list = parseIsaList(opts.isa);
      const vms = opts.vm === undefined ? [] : parseVmList(opts.vm);
      process.stderr.write(
        `roam up: starting ${list.length} agent(s)${list.some((i) => i !== 'x64') ? ' (emulated ones take a few seconds)' : ''}` +
          `${vms.length > 0 ? ` and ${vms.map((v) => `a full-system ${v} VM`).join(', ')} (boots in about 10 s, longer under load)` : ''}\n`,
      );
      const started = Date.now();
      const cluster = await startCluster(list, {
        vms,
        vmMemoryMiB: opts.vmMemory,
        onVmImage: (line) => process.stderr.write(`roam up: ${line}\n`),
        onNode: (node) =>
          process.stderr.write(
            `roam up: ${node.name} answers at ${node.url}${node.vm ? ` after ${((Date.now() - started) / 1000).toFixed(1)} s (console: ${node.vm.log})` : ''}\n`,
          ),
      });
      process.stdout.write(`${nodesTable(await facts(cluster))}\n`);
    });

  program
    .command('down')
    .description('Stop the local cluster (its agents and their containers)')
    .action(async () => {
      const cluster = loadCluster();
      await stopCluster(cluster);
      process.stdout.write(`stopped ${cluster.nodes.map((n) => n.name).join(', ')}\n`);
    });

  program
    .command('nodes')
    .description('List the nodes of the cluster with their facts')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const all = await facts(loadCluster());
      process.stdout.write(opts.json ? `${JSON.stringify(all, null, 1)}\n` : `${nodesTable(all)}\n`);
    });

  program
    .command('ps')
    .description('List the containers of the cluster and where they run')
    .option('-a, --all', 'also containers that ended')
    .option('--json', 'machine-readable output')
    .action(async (opts: { all?: boolean; json?: boolean }) => {
      // Every agent is asked at once, each within AgentClient's time limit: a node that does not
      // answer is reported, and the others are listed.
      const answers = await askEveryNode(loadCluster(), (client) => client.containers());
      for (const { node, error } of answers)
        if (error) process.stderr.write(`roam ps: node ${node.name} ${trouble(error)}\n`);
      const all = answers
        .flatMap((a) => a.value ?? [])
        .filter((c) => c.status !== 'moved' && (opts.all || !terminalStatuses.includes(c.status)));
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(all, null, 1)}\n`);
        return;
      }
      const rows = all.map((c: ContainerInfo) => [
        c.id,
        c.name ?? '',
        c.node,
        c.status + (c.exitCode !== undefined ? ` (${c.exitCode})` : ''),
        c.ports.join(',') || '-',
        [...c.history, c.node].join('>'),
        c.args.join(' ').slice(0, 40),
      ]);
      process.stdout.write(`${textTable(['ID', 'NAME', 'NODE', 'STATUS', 'PORTS', 'PATH', 'COMMAND'], rows)}\n`);
      // Stopped with its migration's outcome unknown: say why, and how to settle it.
      for (const c of all.filter((c) => c.status === 'unsettled'))
        process.stdout.write(
          `${c.id} is unsettled: ${c.reason ?? 'its migration outcome is unknown'} (roam recover ${c.id})\n`,
        );
    });

  program
    .command('logs')
    .description("Print a container's output so far (it follows the container across migrations)")
    .argument('<id>', 'container ID or name')
    .option('-f, --follow', 'keep printing until the container ends')
    .action(async (id: string, opts: { follow?: boolean }) => {
      await followLogs(loadCluster(), id, Boolean(opts.follow), (chunk) => process.stdout.write(chunk));
    });

  program
    .command('stop')
    .description('Stop a container (during a migration, its copies on both nodes)')
    .argument('<id>', 'container ID or name')
    .action(async (id: string) => {
      const { nodes, info } = await stopContainer(loadCluster(), id);
      process.stdout.write(`stopped ${info.id} on ${nodes.map((n) => n.name).join(' and ')}\n`);
    });
}

/** How a node's failure to answer reads: unreachable (down, or silent), or what it answered. */
function trouble(error: AgentError): string {
  return `${unreachable(error) ? 'is unreachable' : 'failed'} (${error.message})`;
}

/**
 * Each node's facts as its agent tells them, asked at once; a VM node's also say so (vm: its
 * emulator); a node that does not answer in time is listed with its error.
 */
async function facts(cluster: Cluster): Promise<((NodeFacts & { vm?: string }) | { name: string; error: string })[]> {
  const answers = await askEveryNode(cluster, (client) => client.node());
  return answers.map(({ node, value, error }) =>
    error
      ? { name: node.name, error: `${unreachable(error) ? 'unreachable: ' : ''}${error.message}` }
      : node.vm
        ? { ...value, vm: node.vm.emulator }
        : value,
  );
}

function nodesTable(all: ((NodeFacts & { vm?: string }) | { name: string; error: string })[]): string {
  const rows = all.map((f) =>
    'error' in f
      ? [f.name, '-', '-', '-', '-', '-', f.error, '-']
      : [
          f.name,
          f.isa + (f.vm ? ' (vm)' : f.emulated ? ' (qemu)' : ''),
          f.cores,
          mib(f.memoryBytes).replace(' MiB', ''),
          f.node,
          `${f.power.idleWatts}-${f.power.peakWatts} W`,
          f.capabilities.dirtyTracking,
          f.capabilities.postCopy ? 'yes' : 'no',
        ],
  );
  return textTable(['NODE', 'ISA', 'CORES', 'MEMORY(MiB)', 'NODE.JS', 'POWER', 'DIRTY-TRACKING', 'POST-COPY'], rows);
}

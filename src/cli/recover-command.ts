import type { Command } from 'commander';
import { agentClient, askEveryNode, loadCluster } from '../cluster/cluster.js';
import { UserError } from './options.js';

export function registerRecover(program: Command): void {
  program
    .command('recover')
    .description(
      'Settle an unsettled container (stopped on its source after a migration whose outcome was lost): ' +
        "asks the destination's agent again, then resumes it on the source or ends it there as moved",
    )
    .argument('<id>', 'container ID or name')
    .action(async (idOrName: string) => {
      const cluster = loadCluster();
      const answers = await askEveryNode(cluster, (client) => client.containers());
      const found = answers.flatMap(({ node, value }) =>
        (value ?? [])
          .filter((c) => (c.id === idOrName || c.name === idOrName) && c.status === 'unsettled')
          .map((info) => ({ node, info })),
      );
      const silent = answers.filter((a) => a.error).map((a) => a.node.name);
      const unasked = silent.length > 0 ? ` (nodes not asked: ${silent.join(', ')})` : '';
      if (found.length === 0) throw new UserError(`no unsettled container ${idOrName} in the cluster${unasked}`);
      const { node, info } = found[0]!;
      const after = await agentClient(cluster, node).recover(info.id);
      const outcome =
        after.status === 'running'
          ? `resumed on ${node.name} (the destination never ran it)`
          : after.status === 'moved'
            ? `runs on ${after.movedTo ?? 'its destination'} (it ran there); ended on ${node.name}`
            : `still unsettled on ${node.name}: ${after.reason ?? 'no answer'}`;
      process.stdout.write(`${info.id} ${outcome}\n`);
      if (after.status === 'unsettled') process.exitCode = 1;
    });
}

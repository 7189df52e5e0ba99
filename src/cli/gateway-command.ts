import type { Command } from 'commander';
import { Gateway } from '../gateway/gateway.js';
import { announceReady, untilStopped } from './daemon.js';
import { UserError } from './options.js';

export function registerGateway(program: Command): void {
  program
    .command('gateway')
    .description(
      "Run a cluster's gateway: public endpoints whose client connections survive migrations (started by roam up)",
    )
    .option('--host <address>', 'address to listen on (API, tunnel and published ports)', '127.0.0.1')
    .option('--api-port <port>', 'HTTP API port (0: any free port)', '7071')
    .option('--tunnel-port <port>', 'port containers connect their tunnel to (0: any)', '7072')
    .option('--ready-file <file>', 'write {url, tunnel, pid} here once listening')
    .action(async (opts: { host: string; apiPort: string; tunnelPort: string; readyFile?: string }) => {
      const token = process.env.ROAM_AGENT_TOKEN;
      if (!token) throw new UserError('set ROAM_AGENT_TOKEN to the cluster token');
      const gateway = new Gateway({
        host: opts.host,
        apiPort: Number(opts.apiPort),
        tunnelPort: Number(opts.tunnelPort),
        token,
        log: (line) => process.stdout.write(`${line}\n`),
      });
      let addresses: { url: string; tunnel: string };
      try {
        addresses = await gateway.listen();
      } catch (error) {
        throw new UserError(`cannot listen: ${(error as Error).message}`, { cause: error });
      }
      process.stdout.write(`roam gateway: API ${addresses.url}, tunnels at ${addresses.tunnel}\n`);
      announceReady(opts.readyFile, addresses);
      await untilStopped();
      gateway.close();
      process.exit(0);
    });
}

import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { Agent } from '../agent/agent.js';
import { defaultPower } from '../agent/facts.js';
import { hostIsa } from '../platform/isa.js';
import { cacheDir } from '../platform/paths.js';
import { announceReady, untilStopped } from './daemon.js';
import { hostPort, tcpPort, UserError } from './options.js';

interface AgentOptions {
  name?: string;
  host: string;
  port: string;
  stateDir?: string;
  tokenFile?: string;
  idleWatts?: string;
  peakWatts?: string;
  readyFile?: string;
  gateway?: string;
  dataPort?: string;
  dataAddress?: string;
  hostAlias?: string;
  emulated?: boolean;
}

function watts(value: string | undefined, fallback: number, option: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new UserError(`${option} ${value}: expected watts (a number >= 0)`);
  return n;
}

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description("Run this server's agent: hosts containers and answers the HTTP API (docs/agent-api.yaml)")
    .option('--name <name>', "this node's name (default: its ISA)")
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'HTTP port (0: any free port)', '7070')
    .option('--state-dir <dir>', 'where modules, logs and incoming files are kept (default: ~/.cache/roam/agent/NAME)')
    .option(
      '--token-file <file>',
      'file holding the API token (default: $ROAM_AGENT_TOKEN, else a new token in STATE-DIR/token)',
    )
    .option('--idle-watts <watts>', 'power model: watts at idle')
    .option('--peak-watts <watts>', 'power model: watts at full load')
    .option('--ready-file <file>', 'write {url, pid} here once listening')
    .option('--gateway <host:port>', "the cluster gateway's tunnel address (containers with ports connect there)")
    .option('--data-port <port>', 'fixed port for incoming migrations (default: any free port per migration)')
    .option(
      '--data-address <host:port>',
      "where sources reach that port, behind port forwarding (default: this agent's address)",
    )
    .option('--emulated', "report this node's CPU as emulated (a full-system VM under TCG: much slower than it looks)")
    .option('--host-alias <address>', "where this node reaches the cluster's 127.0.0.1 (a VM: its host, e.g. 10.0.2.2)")
    .action(async (opts: AgentOptions) => {
      const isa = hostIsa();
      const name = opts.name ?? isa;
      const stateDir = resolve(opts.stateDir ?? cacheDir('agent', name));
      mkdirSync(stateDir, { recursive: true });
      const port = tcpPort(opts.port, '--port');
      const token = agentToken(opts.tokenFile, stateDir);
      const power = {
        idleWatts: watts(opts.idleWatts, defaultPower[isa].idleWatts, '--idle-watts'),
        peakWatts: watts(opts.peakWatts, defaultPower[isa].peakWatts, '--peak-watts'),
      };
      // The addon is optional: its absence only means the comparing dirty tracker.
      const { nativeDirtyTracking } = await import('../native/addon.js');
      const { lazyRestoreSupport } = await import('../migrate/post-copy.js');
      const native = nativeDirtyTracking();
      const lazy = lazyRestoreSupport();
      const agent = new Agent({
        name,
        host: opts.host,
        port,
        token,
        stateDir,
        power,
        capabilities: {
          ...(native.ok
            ? { dirtyTracking: 'userfaultfd-wp' }
            : { dirtyTracking: 'compare', dirtyTrackingNote: native.reason }),
          ...(lazy.ok ? { postCopy: true } : { postCopy: false, postCopyNote: lazy.reason }),
        },
        gateway: opts.gateway,
        dataPort: opts.dataPort === undefined ? undefined : tcpPort(opts.dataPort, '--data-port'),
        dataAddress: opts.dataAddress === undefined ? undefined : hostPort(opts.dataAddress, '--data-address'),
        hostAlias: opts.hostAlias,
        emulated: opts.emulated,
        log: (line) => process.stdout.write(`${line}\n`),
      });
      let url: string;
      try {
        url = await agent.listen();
      } catch (error) {
        throw new UserError(`cannot listen on ${opts.host}:${port}: ${(error as Error).message}`, { cause: error });
      }
      process.stdout.write(`roam agent ${name} (${isa}) listening on ${url}, state in ${stateDir}\n`);
      announceReady(opts.readyFile, { url });
      await untilStopped();
      agent.close();
      process.stdout.write(`roam agent ${name} stopped\n`);
      process.exit(0);
    });
}

function agentToken(tokenFile: string | undefined, stateDir: string): string {
  if (tokenFile) {
    try {
      return readFileSync(tokenFile, 'utf8').trim();
    } catch (error) {
      throw new UserError(`--token-file ${tokenFile}: ${(error as Error).message}`, { cause: error });
    }
  }
  if (process.env.ROAM_AGENT_TOKEN) return process.env.ROAM_AGENT_TOKEN;
  const path = join(stateDir, 'token');
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    const token = randomBytes(24).toString('hex');
    writeFileSync(path, `${token}\n`, { mode: 0o600 });
    process.stdout.write(`roam agent: new API token in ${path}\n`);
    return token;
  }
}

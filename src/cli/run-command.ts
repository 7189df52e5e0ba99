import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { Container, readModuleFile } from '../container/container.js';
import { checkName } from '../container/control-protocol.js';
import { runHere } from '../container/run-here.js';
import { temporaryDirectoryPrefix, withTemporaryDirectory } from '../container/temporary-directory.js';
import { parseAllowRule } from '../platform/allow-list.js';
import type { Preopen } from '../wasi/sandbox.js';
import { collect, UserError } from './options.js';

/** `HOST[:GUEST]`: the guest sees HOST under GUEST (default: the same path as written). */
export function parseDir(spec: string): Preopen {
  const colon = spec.indexOf(':');
  const hostPath = colon < 0 ? spec : spec.slice(0, colon);
  const guestPath = colon < 0 ? spec : spec.slice(colon + 1);
  if (!hostPath || !guestPath) throw new UserError(`--dir ${spec}: expected HOST[:GUEST]`);
  let isDirectory = false;
  try {
    isDirectory = statSync(hostPath).isDirectory();
  } catch {
    throw new UserError(`--dir ${spec}: ${hostPath}: no such directory`);
  }
  if (!isDirectory) throw new UserError(`--dir ${spec}: ${hostPath} is not a directory`);
  return { hostPath, guestPath };
}

/** `HOSTPORT:PORT` (or `PORT` for both). */
export function parsePublish(spec: string): { hostPort: number; port: number } {
  const [host, guest = host] = spec.split(':');
  const [hostPort, port] = [Number(host), Number(guest)];
  const valid = (n: number) => Number.isInteger(n) && n > 0 && n <= 65535;
  if (spec.split(':').length > 2 || !valid(hostPort) || !valid(port))
    throw new UserError(`-p ${spec}: expected HOSTPORT:PORT (TCP ports)`);
  return { hostPort, port };
}

export function parseEnv(specs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw new UserError(`--env ${spec}: expected KEY=VALUE`);
    env[spec.slice(0, eq)] = spec.slice(eq + 1);
  }
  return env;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description(
      'Run a WebAssembly (wasm32-wasi) module here, or in the background on a node of the cluster (--node, -p)',
    )
    .argument('[module]', 'the .wasm module (plain, or migratable from roam build); not with -f')
    .argument('[args...]', 'arguments for the program (after --)')
    .option('-f, --file <spec>', 'run the processes of a container spec (YAML) in one container here')
    .option('--dir <host[:guest]>', 'preopen a host directory (repeatable)', collect, [])
    .option('--env <key=value>', 'set an environment variable (repeatable)', collect, [])
    .option('--argv0 <name>', 'argv[0] seen by the program (default: the module path)')
    .option('--name <name>', 'make the running program addressable (roam checkpoint NAME)')
    .option('--node <node>', 'run it in the background on this node of the cluster (roam up); prints its ID')
    .option(
      '-p, --publish <hostPort:port>',
      "publish the guest's listening port on the cluster gateway (repeatable; implies the cluster)",
      collect,
      [],
    )
    .option(
      '--allow-connect <addr[/prefix][:port]>',
      "let the guest's outgoing connections reach only these (repeatable; 'none' for nowhere; default: anywhere; implies the cluster)",
      collect,
      [],
    )
    .action(
      async (
        modulePath: string | undefined,
        args: string[],
        opts: {
          file?: string;
          dir: string[];
          env: string[];
          argv0?: string;
          name?: string;
          node?: string;
          publish: string[];
          allowConnect: string[];
        },
      ) => {
        if (opts.file !== undefined) {
          const others = [modulePath, opts.argv0, opts.node].some((o) => o !== undefined);
          if (
            others ||
            args.length ||
            opts.dir.length ||
            opts.env.length ||
            opts.publish.length ||
            opts.allowConnect.length
          )
            throw new UserError('-f: the spec says everything (no module, arguments or other options than --name)');
          const { runSpecFile } = await import('./run-spec.js');
          if (opts.name) checkName(opts.name);
          process.exitCode = await runSpecFile(opts.file, opts.name);
          return;
        }
        if (modulePath === undefined) throw new UserError('expected a module to run (or -f SPEC)');
        const preopens = opts.dir.map(parseDir);
        const env = parseEnv(opts.env);
        const publish = opts.publish.map(parsePublish);
        for (const rule of opts.allowConnect) parseAllowRule(rule);
        if (opts.name) checkName(opts.name);
        if (opts.node || publish.length > 0 || opts.allowConnect.length > 0) {
          const { loadCluster, startOnNode } = await import('../cluster/cluster.js');
          const cluster = loadCluster();
          const node = opts.node ?? cluster.nodes[0]!.name;
          const dirs = preopens.map((p) => ({ guestPath: p.guestPath, hostPath: resolve(p.hostPath) }));
          const info = await startOnNode(
            cluster,
            node,
            modulePath,
            {
              args: [opts.argv0 ?? basename(modulePath), ...args],
              env,
              dirs,
              name: opts.name,
              ...(opts.allowConnect.length > 0 ? { allow: opts.allowConnect } : {}),
            },
            publish,
          );
          for (const p of publish) process.stdout.write(`published 127.0.0.1:${p.hostPort} -> port ${p.port}\n`);
          process.stdout.write(`started on ${info.node}${info.status === 'running' ? '' : ` (${info.status})`}
${info.id}
`);
          return;
        }
        // A temporary directory of its own, removed when the program ends (kept after a checkpoint,
        // whose image refers to it).
        const given = preopens.map((p) => ({ guestPath: p.guestPath, hostPath: resolve(p.hostPath) }));
        let temporary: string | undefined;
        const sandbox = withTemporaryDirectory(given, env, () => {
          temporary = mkdtempSync(join(tmpdir(), temporaryDirectoryPrefix));
          return temporary;
        });
        const container = await Container.open({
          kind: 'start',
          ...(await readModuleFile(modulePath)),
          // A named container is there to be checkpointed.
          migratableOnly: opts.name !== undefined,
          args: [opts.argv0 ?? modulePath, ...args],
          env: sandbox.env,
          preopens: sandbox.preopens,
        });
        const exitCode = await runHere(container, opts.name);
        if (temporary && !container.checkpointed) rmSync(temporary, { recursive: true, force: true });
        process.exitCode = exitCode;
      },
    );
}

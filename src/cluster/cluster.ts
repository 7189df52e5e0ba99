import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import * as v from 'valibot';
import { type ContainerInfo, type MigrationResult, type StartRequest, terminalStatuses } from '../agent/api.js';
import { AgentClient, AgentError } from '../agent/client.js';
import { manifestSection, sha256 } from '../build/manifest.js';
import { hasCustomSection } from '../build/module-binary.js';
import { GatewayClient } from '../gateway/client.js';
import type { MigrationMode, MigrationProgress } from '../migrate/sender.js';
import { RoamError } from '../platform/errors.js';
import { nodeCommand, nodeCommandEnv } from '../platform/foreign-node.js';
import { hostIsa, type Isa, isas } from '../platform/isa.js';
import { logTail } from '../platform/log-tail.js';
import { cacheDir } from '../platform/paths.js';
import { check, jsonObject, tcpPortSchema } from '../platform/schema.js';
import { checkVmPrerequisites, defaultVmTimeoutMs, startArm64Vm, type VmIsa } from '../vm/arm64-vm.js';

const text = v.string('expected a string');
const pid = v.pipe(
  v.number('expected a process ID'),
  v.integer('expected a process ID'),
  v.minValue(0, 'expected a process ID'),
);
const isaNames = Object.keys(isas) as Isa[];

const ClusterNodeSchema = jsonObject(
  {
    name: text,
    isa: v.picklist(isaNames, `expected one of ${isaNames.join(', ')}`),
    url: text,
    pid,
    stateDir: text,
    /** Set when the node is a full-system VM (pid is qemu's; its agent is reached through port forwards). */
    vm: v.optional(
      jsonObject(
        {
          emulator: v.literal('qemu-system-aarch64', 'expected qemu-system-aarch64'),
          apiPort: tcpPortSchema,
          dataPort: tcpPortSchema,
          log: text,
        },
        'a VM {emulator, apiPort, dataPort, log}',
      ),
    ),
  },
  'a node {name, isa, url, pid, stateDir, vm?}',
);
export type ClusterNode = v.InferOutput<typeof ClusterNodeSchema>;

/** A local cluster started by `roam up`: a gateway and agents on loopback sharing one token (the cluster file). */
const ClusterSchema = jsonObject(
  {
    token: text,
    createdAt: text,
    nodes: v.array(ClusterNodeSchema, 'expected an array of nodes'),
    gateway: v.optional(
      jsonObject({ url: text, tunnel: text, pid, stateDir: text }, 'a gateway {url, tunnel, pid, stateDir}'),
    ),
  },
  'a cluster {token, createdAt, nodes, gateway?}',
);
export type Cluster = v.InferOutput<typeof ClusterSchema>;

export type ClusterErrorCode =
  | 'ROAM_CLUSTER_NOT_UP'
  | 'ROAM_CLUSTER_FILE_INVALID'
  | 'ROAM_CLUSTER_ALREADY_UP'
  | 'ROAM_CLUSTER_START_FAILED'
  | 'ROAM_CLUSTER_NO_NODE'
  | 'ROAM_CLUSTER_NO_GATEWAY'
  | 'ROAM_CLUSTER_NO_CONTAINER'
  | 'ROAM_CLUSTER_NOT_RUNNING'
  | 'ROAM_CLUSTER_SAME_NODE'
  | 'ROAM_CLUSTER_BAD_MODULE'
  | 'ROAM_CLUSTER_MIGRATION_FAILED';

/** What `roam up` and the cluster commands refuse or fail at (docs/errors-agent.md lists the codes). */
export class ClusterError extends RoamError {
  constructor(
    readonly code: ClusterErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Where `roam up` records its cluster (ROAM_CLUSTER_DIR keeps test clusters apart). */
export function clusterDir(): string {
  return process.env.ROAM_CLUSTER_DIR ?? cacheDir('cluster');
}

const clusterFile = () => join(clusterDir(), 'cluster.json');

export function loadCluster(): Cluster {
  const file = clusterFile();
  if (!existsSync(file)) throw new ClusterError('ROAM_CLUSTER_NOT_UP', 'no cluster is up: start one with roam up');
  const damaged = (detail: string, cause?: unknown) =>
    new ClusterError(
      'ROAM_CLUSTER_FILE_INVALID',
      `the cluster file ${file} is damaged (${detail}): stop its daemons by hand if any still run, then remove it`,
      { cause },
    );
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw damaged(error instanceof SyntaxError ? 'not JSON' : (error as Error).message, error);
  }
  const checked = check(ClusterSchema, value);
  if (!checked.ok) throw damaged(checked.message);
  return checked.value;
}

export function clusterNode(cluster: Cluster, name: string): ClusterNode {
  const node = cluster.nodes.find((n) => n.name === name);
  if (!node)
    throw new ClusterError(
      'ROAM_CLUSTER_NO_NODE',
      `no node ${name} in the cluster (nodes: ${cluster.nodes.map((n) => n.name).join(', ')})`,
    );
  return node;
}

/** `timeoutMs`: how long a small call may wait for the agent (AgentClient's default otherwise). */
export function agentClient(cluster: Cluster, node: ClusterNode, options: { timeoutMs?: number } = {}): AgentClient {
  return new AgentClient(node.url, cluster.token, options);
}

/** One node's answer, or why it gave none. */
export type NodeAnswer<T> =
  | { node: ClusterNode; value: T; error?: undefined }
  | { node: ClusterNode; value?: undefined; error: AgentError };

/**
 * How long each node has to answer a question asked of every node (roam ps, nodes, locating a
 * container): a few seconds, so that a node that does not answer is reported soon (an agent under
 * qemu answers these in well under a second).
 */
export const nodeQueryTimeoutMs = 5_000;

/**
 * Asks every node's agent at once. A node that cannot be reached, does not answer in time, or
 * answers with an error comes back with its AgentError, so one dead node never holds up the rest.
 */
export function askEveryNode<T>(
  cluster: Cluster,
  ask: (client: AgentClient, node: ClusterNode) => Promise<T>,
  options: { timeoutMs?: number } = {},
): Promise<NodeAnswer<T>[]> {
  const timeoutMs = options.timeoutMs ?? nodeQueryTimeoutMs;
  return Promise.all(
    cluster.nodes.map((node) =>
      ask(agentClient(cluster, node, { timeoutMs }), node).then(
        (value): NodeAnswer<T> => ({ node, value }),
        (error: unknown): NodeAnswer<T> => {
          if (error instanceof AgentError) return { node, error };
          throw error;
        },
      ),
    ),
  );
}

/** Whether an agent's failure means it could not be asked at all (down, or not answering). */
export function unreachable(error: AgentError): boolean {
  return error.code === 'ROAM_AGENT_UNREACHABLE' || error.code === 'ROAM_AGENT_TIMEOUT';
}

function gatewayClient(cluster: Cluster): GatewayClient {
  if (!cluster.gateway)
    throw new ClusterError(
      'ROAM_CLUSTER_NO_GATEWAY',
      'this cluster has no gateway to publish ports: roam down, then roam up again',
    );
  return new GatewayClient(cluster.gateway.url, cluster.token);
}

/**
 * A container's log from the start, handed to `out` chunk by chunk (with the node it came from),
 * following it from node to node; with `follow`, until it ends.
 */
export async function followLogs(
  cluster: Cluster,
  idOrName: string,
  follow: boolean,
  out: (chunk: Buffer, node: ClusterNode) => void,
): Promise<void> {
  let { node } = await locateContainer(cluster, idOrName);
  let offset = 0;
  for (;;) {
    const from = node;
    const result = await agentClient(cluster, from).logs(idOrName, { offset, follow }, (chunk) => out(chunk, from));
    offset += result.bytes;
    if (!result.movedTo) return;
    node = cluster.nodes.find((n) => n.name === result.movedTo) ?? (await locateContainer(cluster, idOrName)).node;
  }
}

/** The node a container runs on now (by ID or name), asking every agent. */
export async function locateContainer(
  cluster: Cluster,
  idOrName: string,
): Promise<{ node: ClusterNode; info: ContainerInfo }> {
  const copies = await findCopies(cluster, idOrName);
  // A copy that failed at a destination (post-copy, source resumed) must not hide the live one.
  return copies.find((c) => !terminalStatuses.includes(c.info.status)) ?? copies[0]!;
}

/** Every node's record of a container (by ID or name) that has not moved on; at least one. */
async function findCopies(cluster: Cluster, idOrName: string): Promise<{ node: ClusterNode; info: ContainerInfo }[]> {
  const answers = await askEveryNode(cluster, (client) => client.containers());
  const copies: { node: ClusterNode; info: ContainerInfo }[] = [];
  for (const answer of answers) {
    const info = answer.value?.find((c) => (c.id === idOrName || c.name === idOrName) && c.status !== 'moved');
    if (info) copies.push({ node: answer.node, info });
  }
  if (copies.length === 0) {
    const silent = answers.filter((a) => a.error).map((a) => `${a.node.name}: ${a.error!.message}`);
    throw new ClusterError(
      'ROAM_CLUSTER_NO_CONTAINER',
      `no container ${idOrName} in the cluster${silent.length > 0 ? ` (nodes not asked: ${silent.join('; ')})` : ''}`,
    );
  }
  return copies;
}

/** Node names for a list of ISAs: the ISA itself, then ISA-2, ISA-3... for repeats. */
export function nodeNames(isas: Isa[]): string[] {
  const seen = new Map<Isa, number>();
  return isas.map((isa) => {
    const n = (seen.get(isa) ?? 0) + 1;
    seen.set(isa, n);
    return n === 1 ? isa : `${isa}-${n}`;
  });
}

/** The name of the full-system VM node for `isa` (roam up --vm). */
export function vmNodeName(isa: VmIsa): string {
  return `${isa}-vm`;
}

/**
 * Starts the gateway and one agent per ISA on loopback, in the background (foreign ISAs under
 * qemu-user), plus one full-system VM per `vms` entry (qemu-system, node ISA-vm), and returns once
 * every one answers. What started is stopped again if anything fails.
 */
export async function startCluster(
  isas: Isa[],
  options: {
    timeoutMs?: number;
    onNode?: (node: ClusterNode) => void;
    vms?: VmIsa[];
    vmMemoryMiB?: number;
    onVmImage?: (line: string) => void;
  } = {},
): Promise<Cluster> {
  if (existsSync(clusterFile())) {
    const running = loadCluster();
    if ((await Promise.all([...running.nodes.map((n) => n.pid), running.gateway?.pid ?? 0].map(alive))).some(Boolean)) {
      throw new ClusterError(
        'ROAM_CLUSTER_ALREADY_UP',
        `a cluster is already up (${running.nodes.map((n) => n.name).join(', ')}): roam down first`,
      );
    }
  }
  const vms = [...new Set(options.vms ?? [])];
  // Before anything starts: a missing qemu-system or image is a one-line error.
  const vmImage = vms.length > 0 ? checkVmPrerequisites(options.onVmImage) : undefined;
  const cluster: Cluster = { token: randomBytes(24).toString('hex'), createdAt: new Date().toISOString(), nodes: [] };
  const timeoutMs = options.timeoutMs ?? 180_000;
  const gatewayDir = join(clusterDir(), 'gateway');
  const gateway = startDaemon(cluster.token, 'gateway', hostIsa(), gatewayDir, [
    'gateway',
    '--host',
    '127.0.0.1',
    '--api-port',
    '0',
    '--tunnel-port',
    '0',
  ]);
  try {
    const ready = await gateway.ready(GatewayReadySchema, timeoutMs, (r) =>
      new GatewayClient(r.url, cluster.token).ports(),
    );
    cluster.gateway = { url: ready.url, tunnel: ready.tunnel, pid: gateway.pid, stateDir: gatewayDir };
  } catch (error) {
    await stopCluster({ ...cluster, gateway: { url: '', tunnel: '', pid: gateway.pid, stateDir: gatewayDir } });
    throw error;
  }
  const started = nodeNames(isas).map((name, i) => {
    const stateDir = join(clusterDir(), 'nodes', name);
    const daemon = startDaemon(cluster.token, `agent ${name}`, isas[i]!, stateDir, [
      'agent',
      '--name',
      name,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--state-dir',
      stateDir,
      '--gateway',
      cluster.gateway!.tunnel,
    ]);
    const node: ClusterNode = { name, isa: isas[i]!, url: '', pid: daemon.pid, stateDir };
    cluster.nodes.push(node);
    return daemon
      .ready(AgentReadySchema, timeoutMs, (r) => new AgentClient(r.url, cluster.token).node())
      .then((r) => {
        node.url = r.url;
        options.onNode?.(node);
      });
  });
  for (const isa of vms) {
    const name = vmNodeName(isa);
    const stateDir = join(clusterDir(), 'nodes', name);
    const node: ClusterNode = { name, isa, url: '', pid: 0, stateDir };
    cluster.nodes.push(node);
    started.push(
      (async () => {
        const vm = await startArm64Vm({
          name,
          token: cluster.token,
          stateDir,
          gatewayTunnel: cluster.gateway!.tunnel,
          memoryMiB: options.vmMemoryMiB,
          image: vmImage,
        });
        Object.assign(node, {
          url: vm.url,
          pid: vm.pid,
          vm: { emulator: 'qemu-system-aarch64', apiPort: vm.apiPort, dataPort: vm.dataPort, log: vm.logPath },
        });
        await vm.ready(Math.max(timeoutMs, defaultVmTimeoutMs));
        options.onNode?.(node);
      })(),
    );
  }
  const failed = (await Promise.allSettled(started)).find((r) => r.status === 'rejected');
  if (failed) {
    await stopCluster(cluster);
    throw failed.reason;
  }
  mkdirSync(clusterDir(), { recursive: true });
  writeFileSync(clusterFile(), `${JSON.stringify(cluster, null, 1)}\n`, { mode: 0o600 });
  return cluster;
}

/** What `roam gateway --ready-file` and `roam agent --ready-file` write once they listen. */
const GatewayReadySchema = jsonObject({ url: text, tunnel: text }, 'the gateway {url, tunnel}');
const AgentReadySchema = jsonObject({ url: text }, 'the agent {url}');

/** Starts `roam ARGS` in the background on `isa`, its output in STATE-DIR/daemon.log. */
function startDaemon(token: string, label: string, isa: Isa, stateDir: string, args: string[]) {
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  const readyFile = join(stateDir, 'ready.json');
  const logPath = join(stateDir, 'daemon.log');
  const node = nodeCommand(isa);
  const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');
  const log = openSync(logPath, 'a');
  const child = spawn(node.command, [...node.args, cli, ...args, '--ready-file', readyFile], {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...nodeCommandEnv(node), ROAM_AGENT_TOKEN: token },
  });
  closeSync(log);
  child.unref();
  let exited = false;
  child.on('exit', () => (exited = true));
  /** Waits for the ready file, then for `probe` (an API call) to succeed. */
  const ready = async <S extends v.GenericSchema>(
    schema: S,
    timeoutMs: number,
    probe: (ready: v.InferOutput<S>) => Promise<unknown>,
  ): Promise<v.InferOutput<S>> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exited)
        throw new ClusterError(
          'ROAM_CLUSTER_START_FAILED',
          `${label} exited during start-up; see ${logPath}:\n${logTail(logPath)}`,
        );
      if (existsSync(readyFile)) {
        let checked: ReturnType<typeof check<S>>;
        try {
          checked = check(schema, JSON.parse(readFileSync(readyFile, 'utf8')));
        } catch (error) {
          throw new ClusterError('ROAM_CLUSTER_START_FAILED', `${label} wrote no JSON to ${readyFile}`, {
            cause: error,
          });
        }
        if (!checked.ok)
          throw new ClusterError('ROAM_CLUSTER_START_FAILED', `${label} announced itself wrongly: ${checked.message}`);
        await probe(checked.value);
        return checked.value;
      }
      await sleep(100);
    }
    throw new ClusterError(
      'ROAM_CLUSTER_START_FAILED',
      `${label} did not answer within ${timeoutMs / 1000} s; see ${logPath}`,
    );
  };
  return { pid: child.pid ?? 0, ready };
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    if (pid) process.kill(pid, name);
  } catch {
    // already gone
  }
}

async function alive(pid: number): Promise<boolean> {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops every agent (and so their containers) and every VM node (its pid is qemu's, which exits
 * at once on SIGTERM), and forgets the cluster.
 */
export async function stopCluster(cluster: Cluster): Promise<void> {
  const pids = [...cluster.nodes.map((n) => n.pid), cluster.gateway?.pid ?? 0].filter(Boolean);
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  for (const pid of pids) {
    while ((await alive(pid)) && Date.now() < deadline) await sleep(50);
    if (await alive(pid)) signal(pid, 'SIGKILL');
  }
  rmSync(clusterFile(), { force: true });
}

/** Moves a container to node `to` (driven by the agent it runs on); resolves with its report. */
export async function migrateContainer(
  cluster: Cluster,
  idOrName: string,
  to: string,
  options: {
    mode?: MigrationMode;
    maxRounds?: number;
    /** Post-copy: push the hot set first (default true). */
    hotFirst?: boolean;
    /** Pre-copy that cannot converge ends in post-copy where the destination can (default false). */
    postCopyFallback?: boolean;
    onProgress?: (progress: MigrationProgress) => void;
  } = {},
): Promise<MigrationResult> {
  const destination = clusterNode(cluster, to);
  const { node, info } = await locateContainer(cluster, idOrName);
  if (node.name === to) throw new ClusterError('ROAM_CLUSTER_SAME_NODE', `container ${info.id} already runs on ${to}`);
  const last = await agentClient(cluster, node).migrate(
    info.id,
    {
      to: { name: destination.name, url: destination.url },
      mode: options.mode,
      maxRounds: options.maxRounds,
      ...(options.hotFirst === undefined ? {} : { hotFirst: options.hotFirst }),
      ...(options.postCopyFallback ? { postCopyFallback: true } : {}),
    },
    (line) => {
      if ('progress' in line) options.onProgress?.(line.progress);
    },
  );
  if ('error' in last) throw new ClusterError('ROAM_CLUSTER_MIGRATION_FAILED', last.error);
  if (!('result' in last))
    throw new ClusterError('ROAM_CLUSTER_MIGRATION_FAILED', 'the migration ended without a result');
  return last.result;
}

/**
 * Uploads a migratable module to node `name` (unless it has it) and starts it there; `publish`
 * maps gateway ports to the guest ports it listens on.
 */
export async function startOnNode(
  cluster: Cluster,
  name: string,
  modulePath: string,
  request: Omit<StartRequest, 'module' | 'ports'>,
  publish: { hostPort: number; port: number }[] = [],
): Promise<ContainerInfo> {
  const client = agentClient(cluster, clusterNode(cluster, name));
  let bytes: Buffer;
  try {
    bytes = readFileSync(modulePath);
  } catch (error) {
    throw new ClusterError(
      'ROAM_CLUSTER_BAD_MODULE',
      `${modulePath}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`,
      { cause: error },
    );
  }
  if (!hasCustomSection(bytes, manifestSection))
    throw new ClusterError(
      'ROAM_CLUSTER_BAD_MODULE',
      `${modulePath} is not migratable: build it with roam build first`,
    );
  const gateway = publish.length > 0 ? gatewayClient(cluster) : undefined;
  const digest = sha256(bytes);
  if (!(await client.hasModule(digest))) await client.putModule(digest, bytes);
  const info = await client.start({ ...request, module: digest, ports: publish.map((p) => p.port) });
  try {
    for (const p of publish) await gateway!.publish({ hostPort: p.hostPort, container: info.id, port: p.port });
  } catch (error) {
    await client.stop(info.id).catch(() => undefined);
    await gateway!.forget(info.id).catch(() => undefined);
    throw error;
  }
  return info;
}

/**
 * Stops a container and withdraws its published ports. While it migrates it has a live copy on
 * two nodes: both stop, the destination's first, since a source that finds its destination gone
 * resumes its own copy (the source's migration then fails, and it is stopped as well).
 */
export async function stopContainer(
  cluster: Cluster,
  idOrName: string,
): Promise<{ nodes: ClusterNode[]; info: ContainerInfo }> {
  const copies = await findCopies(cluster, idOrName);
  const live = copies.filter((c) => !terminalStatuses.includes(c.info.status));
  if (live.length === 0)
    throw new ClusterError(
      'ROAM_CLUSTER_NOT_RUNNING',
      `container ${copies[0]!.info.id} is not running (${copies[0]!.info.status})`,
    );
  const sourceLast = [...live].sort(
    (a, b) => Number(a.info.status === 'migrating') - Number(b.info.status === 'migrating'),
  );
  for (const { node, info } of sourceLast) {
    // A copy may end while another one stops (an incoming one is forgotten when its source goes).
    await agentClient(cluster, node)
      .stop(info.id)
      .catch((error: unknown) => {
        if (info.status !== 'incoming' && info.status !== 'migrating') throw error;
      });
  }
  const { info } = live[0]!;
  if (info.ports.length > 0) await gatewayClient(cluster).forget(info.id);
  return { nodes: sourceLast.map((c) => c.node), info };
}

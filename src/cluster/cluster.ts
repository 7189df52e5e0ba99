import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type ContainerInfo, type MigrationResult, type StartRequest, terminalStatuses } from '../agent/api.js';
import { AgentClient } from '../agent/client.js';
import { manifestSection, sha256 } from '../build/manifest.js';
import { hasCustomSection } from '../build/module-binary.js';
import { GatewayClient } from '../gateway/client.js';
import type { MigrationMode, MigrationProgress } from '../migrate/sender.js';
import { nodeCommand, nodeCommandEnv } from '../platform/foreign-node.js';
import { hostIsa, type Isa } from '../platform/isa.js';
import { logTail } from '../platform/log-tail.js';
import { cacheDir } from '../platform/paths.js';
import { checkVmPrerequisites, defaultVmTimeoutMs, startArm64Vm, type VmIsa } from '../vm/arm64-vm.js';

export interface ClusterNode {
  name: string;
  isa: Isa;
  url: string;
  pid: number;
  stateDir: string;
  /** Set when the node is a full-system VM (pid is qemu's; its agent is reached through port forwards). */
  vm?: { emulator: 'qemu-system-aarch64'; apiPort: number; dataPort: number; log: string };
}

/** A local cluster started by `roam up`: a gateway and agents on loopback sharing one token. */
export interface Cluster {
  token: string;
  createdAt: string;
  nodes: ClusterNode[];
  gateway?: { url: string; tunnel: string; pid: number; stateDir: string };
}

export class ClusterError extends Error {}

/** Where `roam up` records its cluster (ROAM_CLUSTER_DIR keeps test clusters apart). */
export function clusterDir(): string {
  return process.env.ROAM_CLUSTER_DIR ?? cacheDir('cluster');
}

const clusterFile = () => join(clusterDir(), 'cluster.json');

export function loadCluster(): Cluster {
  if (!existsSync(clusterFile())) throw new ClusterError('no cluster is up: start one with roam up');
  return JSON.parse(readFileSync(clusterFile(), 'utf8')) as Cluster;
}

export function clusterNode(cluster: Cluster, name: string): ClusterNode {
  const node = cluster.nodes.find((n) => n.name === name);
  if (!node)
    throw new ClusterError(`no node ${name} in the cluster (nodes: ${cluster.nodes.map((n) => n.name).join(', ')})`);
  return node;
}

export function agentClient(cluster: Cluster, node: ClusterNode): AgentClient {
  return new AgentClient(node.url, cluster.token);
}

function gatewayClient(cluster: Cluster): GatewayClient {
  if (!cluster.gateway)
    throw new ClusterError('this cluster has no gateway to publish ports: roam down, then roam up again');
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
  const found = await Promise.all(
    cluster.nodes.map(async (node) => {
      const list = await agentClient(cluster, node)
        .containers()
        .catch(() => [] as ContainerInfo[]);
      const info = list.find((c) => (c.id === idOrName || c.name === idOrName) && c.status !== 'moved');
      return info ? { node, info } : undefined;
    }),
  );
  const copies = found.filter((f) => f !== undefined);
  if (copies.length === 0) throw new ClusterError(`no container ${idOrName} in the cluster`);
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
    const ready = await gateway.ready<{ url: string; tunnel: string }>(timeoutMs, (r) =>
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
      .ready<{ url: string }>(timeoutMs, (r) => new AgentClient(r.url, cluster.token).node())
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
  const ready = async <T>(timeoutMs: number, probe: (ready: T) => Promise<unknown>): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exited) throw new ClusterError(`${label} exited during start-up; see ${logPath}:\n${logTail(logPath)}`);
      if (existsSync(readyFile)) {
        const value = JSON.parse(readFileSync(readyFile, 'utf8')) as T;
        await probe(value);
        return value;
      }
      await sleep(100);
    }
    throw new ClusterError(`${label} did not answer within ${timeoutMs / 1000} s; see ${logPath}`);
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
  options: { mode?: MigrationMode; maxRounds?: number; onProgress?: (progress: MigrationProgress) => void } = {},
): Promise<MigrationResult> {
  const destination = clusterNode(cluster, to);
  const { node, info } = await locateContainer(cluster, idOrName);
  if (node.name === to) throw new ClusterError(`container ${info.id} already runs on ${to}`);
  const last = await agentClient(cluster, node).migrate(
    info.id,
    { to: { name: destination.name, url: destination.url }, mode: options.mode, maxRounds: options.maxRounds },
    (line) => {
      if ('progress' in line) options.onProgress?.(line.progress);
    },
  );
  if ('error' in last) throw new ClusterError(last.error);
  if (!('result' in last)) throw new ClusterError('the migration ended without a result');
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
      `${modulePath}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`,
    );
  }
  if (!hasCustomSection(bytes, manifestSection))
    throw new ClusterError(`${modulePath} is not migratable: build it with roam build first`);
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
    throw new ClusterError(`container ${copies[0]!.info.id} is not running (${copies[0]!.info.status})`);
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

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ContainerInfo, MigrationResult, StartRequest } from '../agent/api.js';
import { manifestSection, sha256 } from '../build/manifest.js';
import { hasCustomSection } from '../build/module-binary.js';
import type { MigrationMode, MigrationProgress } from '../migrate/sender.js';
import { AgentClient } from '../agent/client.js';
import { nodeCommand, nodeCommandEnv } from '../platform/foreign-node.js';
import type { Isa } from '../platform/isa.js';
import { cacheDir } from '../platform/paths.js';

export interface ClusterNode {
  name: string;
  isa: Isa;
  url: string;
  pid: number;
  stateDir: string;
}

/** A local cluster started by `roam up`: agents on loopback sharing one token. */
export interface Cluster {
  token: string;
  createdAt: string;
  nodes: ClusterNode[];
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
  if (!node) throw new ClusterError(`no node ${name} in the cluster (nodes: ${cluster.nodes.map((n) => n.name).join(', ')})`);
  return node;
}

export function agentClient(cluster: Cluster, node: ClusterNode): AgentClient {
  return new AgentClient(node.url, cluster.token);
}

/** The node a container runs on now (by ID or name), asking every agent. */
export async function locateContainer(cluster: Cluster, idOrName: string): Promise<{ node: ClusterNode; info: ContainerInfo }> {
  const found = await Promise.all(
    cluster.nodes.map(async (node) => {
      const list = await agentClient(cluster, node).containers().catch(() => [] as ContainerInfo[]);
      const info = list.find((c) => (c.id === idOrName || c.name === idOrName) && c.status !== 'moved');
      return info ? { node, info } : undefined;
    }),
  );
  const hit = found.find((f) => f !== undefined);
  if (!hit) throw new ClusterError(`no container ${idOrName} in the cluster`);
  return hit;
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

/**
 * Starts one agent per ISA on loopback, in the background (foreign ISAs under qemu-user), and
 * returns once every one answers. Agents that started are stopped again if another fails.
 */
export async function startCluster(isas: Isa[], options: { timeoutMs?: number; onNode?: (node: ClusterNode) => void } = {}): Promise<Cluster> {
  if (existsSync(clusterFile())) {
    const running = loadCluster();
    if ((await Promise.all(running.nodes.map((n) => alive(n.pid)))).some(Boolean)) {
      throw new ClusterError(`a cluster is already up (${running.nodes.map((n) => n.name).join(', ')}): roam down first`);
    }
  }
  const cluster: Cluster = { token: randomBytes(24).toString('hex'), createdAt: new Date().toISOString(), nodes: [] };
  const names = nodeNames(isas);
  const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');
  const started = names.map((name, i) => startAgent(cluster.token, name, isas[i]!, cli));
  const results = await Promise.allSettled(
    started.map(async ({ node, ready }) => {
      await ready(options.timeoutMs ?? 180_000);
      options.onNode?.(node);
      return node;
    }),
  );
  cluster.nodes = started.map((s) => s.node);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) {
    await stopCluster(cluster);
    throw failed.reason;
  }
  mkdirSync(clusterDir(), { recursive: true });
  writeFileSync(clusterFile(), `${JSON.stringify(cluster, null, 1)}\n`, { mode: 0o600 });
  return cluster;
}

function startAgent(token: string, name: string, isa: Isa, cli: string) {
  const stateDir = join(clusterDir(), 'nodes', name);
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  const readyFile = join(stateDir, 'ready.json');
  const node = nodeCommand(isa);
  const log = openSync(join(stateDir, 'agent.log'), 'a');
  const child = spawn(node.command, [...node.args, cli, 'agent', '--name', name, '--host', '127.0.0.1', '--port', '0', '--state-dir', stateDir, '--ready-file', readyFile], {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...nodeCommandEnv(node), ROAM_AGENT_TOKEN: token },
  });
  closeSync(log);
  child.unref();
  const clusterNode: ClusterNode = { name, isa, url: '', pid: child.pid ?? 0, stateDir };
  let exited = false;
  child.on('exit', () => (exited = true));
  const ready = async (timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exited) throw new ClusterError(`agent ${name} exited during start-up; see ${join(stateDir, 'agent.log')}:\n${tail(join(stateDir, 'agent.log'))}`);
      if (existsSync(readyFile)) {
        clusterNode.url = (JSON.parse(readFileSync(readyFile, 'utf8')) as { url: string }).url;
        await new AgentClient(clusterNode.url, token).node();
        return;
      }
      await sleep(100);
    }
    throw new ClusterError(`agent ${name} did not answer within ${timeoutMs / 1000} s; see ${join(stateDir, 'agent.log')}`);
  };
  return { node: clusterNode, ready };
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-6).join('\n');
  } catch {
    return '';
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    if (pid) process.kill(pid, name);
  } catch {
    // already gone
  }
}

async function alive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops every agent (and so their containers) and forgets the cluster. */
export async function stopCluster(cluster: Cluster): Promise<void> {
  for (const node of cluster.nodes) signal(node.pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  for (const node of cluster.nodes) {
    while (node.pid && (await alive(node.pid)) && Date.now() < deadline) await sleep(50);
    if (node.pid && (await alive(node.pid))) signal(node.pid, 'SIGKILL');
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
  const last = await agentClient(cluster, node).migrate(info.id, { to: { name: destination.name, url: destination.url }, mode: options.mode, maxRounds: options.maxRounds }, (line) => {
    if ('progress' in line) options.onProgress?.(line.progress);
  });
  if ('error' in last) throw new ClusterError(last.error);
  if (!('result' in last)) throw new ClusterError('the migration ended without a result');
  return last.result;
}

/** Uploads a migratable module to node `name` (unless it has it) and starts it there. */
export async function startOnNode(name: string, modulePath: string, request: Omit<StartRequest, 'module'>): Promise<ContainerInfo> {
  const cluster = loadCluster();
  const client = agentClient(cluster, clusterNode(cluster, name));
  let bytes: Buffer;
  try {
    bytes = readFileSync(modulePath);
  } catch (error) {
    throw new ClusterError(`${modulePath}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  if (!hasCustomSection(bytes, manifestSection)) throw new ClusterError(`${modulePath} is not migratable: build it with roam build first`);
  const digest = sha256(bytes);
  if (!(await client.hasModule(digest))) await client.putModule(digest, bytes);
  return client.start({ ...request, module: digest });
}

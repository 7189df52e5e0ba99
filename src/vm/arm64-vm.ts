import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { apiPrefix } from '../agent/api.js';
import { AgentClient } from '../agent/client.js';
import type { NodeFacts } from '../agent/facts.js';
import { RoamError } from '../platform/errors.js';
import type { Isa } from '../platform/isa.js';
import { logTail } from '../platform/log-tail.js';
import { aliasLoopback } from '../platform/loopback.js';
import { cacheDir, packageRoot } from '../platform/paths.js';

/**
 * A full-system aarch64 node: qemu-system-aarch64 (TCG) booting Debian 12's arm64 kernel with an
 * initramfs that runs the Roam agent (scripts/vm-image builds it, scripts/vm-init is its /init).
 * Unlike qemu-user nodes it has a real arm64 kernel: userfaultfd, and so post-copy, work there.
 * Reached through qemu's user network: the host forwards 127.0.0.1:API and 127.0.0.1:DATA to the
 * guest's 7070 (agent API) and 7071 (incoming migrations); the guest reaches the host's loopback
 * as 10.0.2.2.
 */
export class VmError extends RoamError {
  readonly code = 'ROAM_VM';
}

/** ISAs `roam up --vm` can start as full-system VMs. */
export const vmIsas = ['arm64'] as const;
export type VmIsa = (typeof vmIsas)[number];

export function isVmIsa(name: string): name is VmIsa {
  return (vmIsas as readonly string[]).includes(name);
}

const qemuBinary = 'qemu-system-aarch64';
/** The guest's view of the host's loopback in qemu's user network. */
export const vmHostAlias = '10.0.2.2';
const guestApiPort = 7070;
const guestDataPort = 7071;

export interface VmImage {
  dir: string;
  kernel: string;
  initrd: string;
}

/** Where scripts/vm-image keeps the arm64 node's kernel and initrd. */
export function vmImageDir(): string {
  return cacheDir('vm', 'arm64');
}

/**
 * Checks that qemu-system-aarch64 is installed and that the image exists, and brings the Roam it
 * holds up to date with this build (scripts/vm-image --check, then --refresh if needed: about a
 * second, no download; its lines go to `onLine`). Throws a VmError saying what to run otherwise.
 */
export function checkVmPrerequisites(onLine: (line: string) => void = () => undefined): VmImage {
  const dir = vmImageDir();
  const image = { dir, kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd') };
  const qemu = spawnSync(qemuBinary, ['--version'], { encoding: 'utf8' });
  if (qemu.error)
    throw new VmError(`${qemuBinary} not found (Debian package qemu-system-arm): run scripts/vm-image first`);
  if (!existsSync(image.kernel) || !existsSync(image.initrd))
    throw new VmError(`no arm64 VM image in ${dir}: run scripts/vm-image first`);
  const script = join(packageRoot, 'scripts', 'vm-image');
  // The script hashes package.json's dependencies with `node`: this one.
  const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` };
  const check = spawnSync('bash', [script, '--check'], { encoding: 'utf8', env });
  if (check.status === 0) return image;
  const reason = (check.stdout + check.stderr).trim() || `${script} --check failed`;
  if (check.status !== 2) throw new VmError(reason);
  onLine(reason.replace(/: run scripts\/vm-image$/, ': refreshing it'));
  const refresh = spawnSync('bash', [script, '--refresh'], { encoding: 'utf8', env });
  for (const line of refresh.stdout.split('\n').filter(Boolean)) onLine(line);
  if (refresh.status !== 0) throw new VmError(`${refresh.stderr.trim() || `${script} --refresh failed`}`);
  return image;
}

export interface VmOptions {
  /** Node name (the agent's --name). */
  name: string;
  /** The cluster's API token, handed to the guest through fw_cfg (not on the command line). */
  token: string;
  /** Emptied, then holds the console log, the token file and qemu's pid. */
  stateDir: string;
  /** The gateway's tunnel as the host sees it (127.0.0.1:PORT); the guest gets 10.0.2.2:PORT. */
  gatewayTunnel?: string;
  /** Guest memory (default 3072 MiB). */
  memoryMiB?: number;
  /** Guest CPUs (default 2). */
  cpus?: number;
  /** Extra agent flags (the guest's init appends them). */
  agentFlags?: string[];
  image?: VmImage;
}

export interface StartedVm {
  isa: Isa;
  /** qemu's pid (SIGTERM ends the VM). */
  pid: number;
  /** The agent's API as the host reaches it. */
  url: string;
  apiPort: number;
  dataPort: number;
  /** The serial console (kernel, init and agent output) and qemu's own messages. */
  logPath: string;
  /** Resolves with the agent's facts once it answers GET /v1/node with the token. */
  ready(timeoutMs?: number): Promise<NodeFacts>;
}

/** Boot to the agent's answer under TCG takes ~9-12 s on an idle 2-core host; longer under load. */
export const defaultVmTimeoutMs = 180_000;

/** Starts the VM in the background (detached: it outlives this process, like `roam up`'s agents). */
export async function startArm64Vm(options: VmOptions): Promise<StartedVm> {
  const image = options.image ?? checkVmPrerequisites();
  const { stateDir } = options;
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  const logPath = join(stateDir, 'console.log');
  const tokenFile = join(stateDir, 'token');
  writeFileSync(tokenFile, options.token, { mode: 0o600 });
  const [apiPort, dataPort] = (await freePorts(2)) as [number, number];
  const append = [
    'console=ttyAMA0',
    'quiet',
    'panic=-1', // a panic ends qemu (-no-reboot) instead of hanging until the timeout
    `roam.name=${options.name}`,
    `roam.data=127.0.0.1:${dataPort}`,
    ...(options.gatewayTunnel ? [`roam.gateway=${aliasLoopback(options.gatewayTunnel, vmHostAlias)}`] : []),
    // TCG emulates the CPU: the agent cannot tell, so it is told (for placement by speed).
    `roam.agent-flags=${['--emulated', ...(options.agentFlags ?? [])].join(',')}`,
  ];
  const args = [
    '-M',
    'virt',
    '-cpu',
    'cortex-a72', // not max: its pointer authentication makes TCG boot several times slower
    '-smp',
    String(options.cpus ?? 2),
    '-m',
    String(options.memoryMiB ?? 3072),
    '-display',
    'none',
    '-monitor',
    'none',
    '-serial',
    'stdio',
    '-no-reboot',
    '-kernel',
    image.kernel,
    '-initrd',
    image.initrd,
    '-append',
    append.join(' '),
    '-fw_cfg',
    `name=opt/roam/token,file=${tokenFile}`,
    '-netdev',
    `user,id=n0,hostfwd=tcp:127.0.0.1:${apiPort}-:${guestApiPort},hostfwd=tcp:127.0.0.1:${dataPort}-:${guestDataPort}`,
    '-device',
    'virtio-net-pci,netdev=n0,romfile=',
    '-device',
    'virtio-rng-pci',
  ];
  const log = openSync(logPath, 'a');
  const child = spawn(qemuBinary, args, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid ?? 0));
    child.once('error', (error) =>
      reject(new VmError(`cannot start ${qemuBinary}: ${error.message}`, { cause: error })),
    );
  });
  child.unref();
  writeFileSync(join(stateDir, 'qemu.pid'), `${pid}\n`);
  let exit: string | undefined;
  child.once('exit', (code, signal) => (exit = signal ? `was killed by ${signal}` : `exited with status ${code}`));
  const url = `http://127.0.0.1:${apiPort}`;

  const ready = async (timeoutMs = defaultVmTimeoutMs): Promise<NodeFacts> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exit)
        throw new VmError(
          `the ${options.name} VM (${qemuBinary}) ${exit} before its agent answered; see ${logPath}:\n${logTail(logPath, 12)}`,
        );
      if (await answers(url, options.token, Math.min(5000, Math.max(deadline - Date.now(), 1))))
        return new AgentClient(url, options.token).node();
      await sleep(500);
    }
    throw new VmError(
      `the agent in the ${options.name} VM did not answer within ${timeoutMs / 1000} s (boot under TCG takes ~12 s on an idle host); see ${logPath}:\n${logTail(logPath, 12)}`,
    );
  };
  return { isa: 'arm64', pid, url, apiPort, dataPort, logPath, ready };
}

/**
 * Whether the agent answers GET /v1/node with the token within `timeoutMs`. qemu accepts a
 * forwarded connection before the guest listens, so only an HTTP answer counts, and a request the
 * guest never answers is abandoned after `timeoutMs`, well before AgentClient's own limit.
 */
function answers(url: string, token: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${url}${apiPrefix}/node`, {
      headers: { authorization: `Bearer ${token}` },
      timeout: timeoutMs,
    });
    req.on('response', (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** `count` distinct free TCP ports on 127.0.0.1 (held together while picked, then released). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((done) => s.close(done))));
  return ports;
}

import { openSync } from 'node:fs';
import { MessageChannel } from 'node:worker_threads';
import type { Preopen } from '../wasi/sandbox.js';
import { Container, readModuleFile } from './container.js';
import { LoopbackBroker } from './loopback-broker.js';
import { serveOwnerLink } from './owner-channel.js';
import { closeQuietly, hostPipe, prefixLines } from './process-stdio.js';
import type { BrokerRequest } from './shared-loopback.js';
import type { MultiProcessSpec, ProcessSpec } from './spec.js';

/**
 * A container of several processes, run here (`roam run -f`): one Container (guest thread, own
 * instance, memory and WASI host) per process, sharing the container's network through a
 * LoopbackBroker on this thread, its preopened directories and environment defaults. A process
 * that ends does not end the others, unless its spec says `onExit: stop-container`.
 */

/** Where a process is in its life; `ProcessEnd` is how it ended. */
export type ProcessState = 'running' | 'exited' | 'failed' | 'stopped';
const allowed: Record<ProcessState, readonly ProcessState[]> = {
  running: ['exited', 'failed', 'stopped'],
  exited: [],
  failed: [],
  stopped: [],
};

export interface ProcessEnd {
  name: string;
  state: Exclude<ProcessState, 'running'>;
  /** The exit status (exited), or 1 (failed); absent when the container stopped it. */
  status?: number;
  /** failed: why; stopped: which process's exit stopped it. */
  reason?: string;
}

interface RunningProcess {
  spec: ProcessSpec;
  index: number;
  state: ProcessState;
  container: Container;
  /** Host fds this owner holds for the process (its write ends): closed when it ends. */
  ownFds: number[];
  closeLink: () => void;
  /** Set when the container stopped it: why. */
  stoppedBy?: string;
}

export interface MultiProcessOptions {
  /** The container's preopened directories (its own /tmp included). */
  preopens: Preopen[];
  /** Environment defaults of every process, overridden by each process's own env. */
  env: Record<string, string>;
  /** Told each process's end, as it happens. */
  onEnd?: (end: ProcessEnd) => void;
}

export class MultiProcessContainer {
  /** Every process's end, in the order they ended, once all ended and their output is written. */
  readonly ended: Promise<ProcessEnd[]>;
  private readonly ends: ProcessEnd[] = [];
  private readonly processes: RunningProcess[] = [];
  private readonly broker: LoopbackBroker;
  private readonly outputs: Promise<void>[] = [];
  private settle!: () => void;

  private constructor(
    private readonly spec: MultiProcessSpec,
    private readonly options: MultiProcessOptions,
  ) {
    this.broker = new LoopbackBroker((index, delivery) => this.processes[index]?.container.deliver(delivery));
    const allEnded = new Promise<void>((resolve) => (this.settle = resolve));
    this.ended = allEnded.then(() => Promise.all(this.outputs)).then(() => this.ends);
  }

  /** Starts every process; a module that cannot be loaded stops those already started. */
  static async start(spec: MultiProcessSpec, options: MultiProcessOptions): Promise<MultiProcessContainer> {
    const container = new MultiProcessContainer(spec, options);
    try {
      await container.startAll();
    } catch (error) {
      await container.stopAll('the container failed to start');
      throw error;
    }
    return container;
  }

  private async startAll(): Promise<void> {
    const { processes } = this.spec;
    const prefixed = processes.length > 1;
    const width = Math.max(...processes.map((p) => p.name.length));
    const prefix = (name: string) => `${name.padEnd(width)} | `;
    const devNull = openSync('/dev/null', 'r');
    // A process read by another writes into that one's stdin through a pair of the broker (so its
    // bytes in flight are the container's); the others' output comes here.
    const indexOf = new Map(processes.map((p, index) => [p.name, index]));
    const pipes = processes.map((): { stdin?: number; stdout?: number } => ({}));
    for (const [reader, p] of processes.entries()) {
      if (!p.stdin) continue;
      const writer = indexOf.get(p.stdin.from)!;
      const pair = this.broker.pipe(writer, reader);
      pipes[reader]!.stdin = pair;
      pipes[writer]!.stdout = pair;
    }
    for (const [index, p] of processes.entries()) {
      const ownFds: number[] = [];
      const output = (stream: 'stdout' | 'stderr'): number => {
        if (!prefixed) return stream === 'stdout' ? 1 : 2;
        const pipe = hostPipe();
        ownFds.push(pipe.writeFd);
        this.outputs.push(prefixLines(pipe.readFd, prefix(p.name), process[stream]));
        return pipe.writeFd;
      };
      const stdio = {
        stdin: devNull,
        stdout: pipes[index]!.stdout === undefined ? output('stdout') : devNull,
        stderr: output('stderr'),
      };
      const channel = new MessageChannel();
      const flag = new Int32Array(new SharedArrayBuffer(4));
      serveOwnerLink(channel.port1, flag, (request: BrokerRequest) => this.broker.answer(index, request));
      const closeLink = () => channel.port1.close();
      let container: Container;
      try {
        container = await Container.open({
          kind: 'start',
          ...(await readModuleFile(p.module)),
          args: [p.module, ...p.args],
          env: { ...this.options.env, ...p.env },
          preopens: this.options.preopens,
          // A wait on another process (recv, accept) needs a guest that can be suspended.
          migratableOnly: true,
          process: { index, link: { port: channel.port2, flag }, stdio, pipes: pipes[index] },
        });
      } catch (error) {
        closeLink();
        for (const fd of ownFds) closeQuietly(fd);
        throw error;
      }
      const running: RunningProcess = { spec: p, index, state: 'running', container, ownFds, closeLink };
      this.processes.push(running);
      container.exited.then(
        (status) => this.end(running, { name: p.name, state: 'exited', status }),
        (error: unknown) =>
          this.end(running, { name: p.name, state: 'failed', status: 1, reason: (error as Error).message }),
      );
    }
  }

  private move(running: RunningProcess, to: ProcessState): boolean {
    if (!allowed[running.state].includes(to)) return false;
    running.state = to;
    return true;
  }

  /** Called once per process, when its guest thread reports its end (or ends, once stopped). */
  private end(running: RunningProcess, outcome: ProcessEnd): void {
    // Whatever a stopped process did meanwhile, the container stopped it.
    const end: ProcessEnd = this.move(running, outcome.state)
      ? outcome
      : { name: outcome.name, state: 'stopped', reason: running.stoppedBy };
    this.broker.processEnded(running.index);
    running.closeLink();
    // Its readers see the end of their input once it can write no more.
    for (const fd of running.ownFds.splice(0)) closeQuietly(fd);
    this.ends.push(end);
    this.options.onEnd?.(end);
    if (end.state !== 'stopped' && running.spec.onExit === 'stop-container')
      void this.stopAll(`${running.spec.name} ended (onExit: stop-container)`);
    if (this.ends.length === this.spec.processes.length) this.settle();
  }

  /** Ends every process still running (their threads are terminated where they are). */
  async stopAll(reason: string): Promise<void> {
    await Promise.all(
      this.processes.map(async (running) => {
        if (!this.move(running, 'stopped')) return;
        running.stoppedBy = reason;
        await running.container.terminate();
      }),
    );
  }

  /** The container's exit status: 0 if every process exited with 0, else the first other status. */
  static statusOf(ends: ProcessEnd[]): number {
    return ends.find((end) => end.status !== undefined && end.status !== 0)?.status ?? 0;
  }
}

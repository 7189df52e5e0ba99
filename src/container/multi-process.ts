import { closeSync, openSync } from 'node:fs';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { MessageChannel } from 'node:worker_threads';
import * as v from 'valibot';
import { sha256 } from '../build/manifest.js';
import { type Image, writeContainerImage } from '../image/image.js';
import { hostIsa } from '../platform/isa.js';
import { describeIssues } from '../platform/schema.js';
import type { Preopen } from '../wasi/sandbox.js';
import { Container, ContainerError, type ContainerState, type ProcessPlumbing, readModuleFile } from './container.js';
import type { CheckpointReply, CheckpointRequest } from './control-protocol.js';
import { LoopbackBroker, OWNER } from './loopback-broker.js';
import { type Member, MultiProcessState, type ProcessEnd } from './multi-process-state.js';
import { serveOwnerLink } from './owner-channel.js';
import { PrefixedOutput } from './process-stdio.js';
import type { BrokerRequest } from './shared-loopback.js';
import type { MultiProcessSpec } from './spec.js';

export type { ProcessEnd };

/**
 * A container of several processes, run here (`roam run -f`, `roam restore` of its image): one
 * Container (guest thread, own instance, memory and WASI host) per process, sharing the
 * container's network and pipes through a LoopbackBroker on this thread, its preopened
 * directories and environment defaults. A process that ends does not end the others, unless its
 * spec says `onExit: stop-container`.
 */

/** Where a process is in its life; `ProcessEnd` is how it ended. */
export type ProcessState = 'running' | 'exited' | 'failed' | 'stopped';
const allowed: Record<ProcessState, readonly ProcessState[]> = {
  running: ['exited', 'failed', 'stopped'],
  exited: [],
  failed: [],
  stopped: [],
};

interface RunningProcess {
  member: Member;
  index: number;
  state: ProcessState;
  container: Container;
  module: Uint8Array;
  closeLink: () => void;
  /** Set when the container stopped it: why. */
  stoppedBy?: string;
}

export interface MultiProcessOptions {
  /** Told each process's end, as it happens. */
  onEnd?: (end: ProcessEnd) => void;
}

export class MultiProcessContainer {
  /** Every process's end, in the order they ended, once all ended and their output is written. */
  readonly ended: Promise<ProcessEnd[]>;
  /** Set once a checkpoint image of this container was written (it refers to its directories). */
  checkpointed = false;
  /** Set when a checkpoint (without leaveRunning) ended the container. */
  endedByCheckpoint = false;
  private readonly ends: ProcessEnd[];
  private readonly processes: RunningProcess[] = [];
  private readonly broker: LoopbackBroker;
  private readonly outputs: PrefixedOutput[] = [];
  private readonly devNull = openSync('/dev/null', 'r');
  private settle!: () => void;

  private constructor(
    private readonly members: Member[],
    private readonly options: MultiProcessOptions,
    restored?: MultiProcessState,
  ) {
    this.ends = [...(restored?.ends ?? [])];
    this.broker = new LoopbackBroker(
      (index, delivery) => this.processes.find((p) => p.index === index)?.container.deliver(delivery),
      restored?.broker,
    );
    const allEnded = new Promise<void>((resolve) => (this.settle = resolve));
    this.ended = allEnded
      .then(() => Promise.all(this.outputs.map((o) => o.done)))
      .then(() => {
        closeSync(this.devNull);
        return this.ends;
      });
  }

  /** Starts every process; a module that cannot be loaded stops those already started. */
  static async start(
    spec: MultiProcessSpec,
    /** `preopens`: the container's directories (its own /tmp included); `env`: every process's defaults. */
    options: MultiProcessOptions & { preopens: Preopen[]; env: Record<string, string> },
  ): Promise<MultiProcessContainer> {
    const prefixed = spec.processes.length > 1;
    const members: Member[] = spec.processes.map((p) => ({ name: p.name, onExit: p.onExit, output: {} }));
    const container = new MultiProcessContainer(members, options);
    // A process read by another writes into its stdin, the others' output comes to the owner:
    // through pairs of the broker either way, so that their bytes in flight are the container's.
    const indexOf = new Map(spec.processes.map((p, index) => [p.name, index]));
    const pipes = spec.processes.map((): NonNullable<ProcessPlumbing['pipes']> => ({}));
    for (const [reader, p] of spec.processes.entries()) {
      if (!p.stdin) continue;
      const writer = indexOf.get(p.stdin.from)!;
      pipes[writer]!.stdout = pipes[reader]!.stdin = container.broker.pipe(writer, reader);
    }
    if (prefixed) {
      for (const [index, member] of members.entries()) {
        const own = pipes[index]!;
        if (own.stdout === undefined) own.stdout = member.output.stdout = container.broker.pipe(index, OWNER);
        own.stderr = member.output.stderr = container.broker.pipe(index, OWNER);
      }
    }
    try {
      container.printOutputs();
      for (const [index, p] of spec.processes.entries()) {
        const { module, label } = await readModuleFile(p.module);
        await container.launch(index, module, (plumbing) =>
          Container.open({
            kind: 'start',
            module,
            label,
            args: [p.module, ...p.args],
            env: { ...options.env, ...p.env },
            preopens: options.preopens,
            // A wait on another process (recv, accept) needs a guest that can be suspended.
            migratableOnly: true,
            process: { ...plumbing, pipes: pipes[index] },
          }),
        );
      }
    } catch (error) {
      await container.stopAll('the container failed to start');
      throw error;
    }
    return container;
  }

  /**
   * Restores a container from its image (`remapped`: the preopens each process had, remapped):
   * the broker with its pairs first, then every process's memory and state, then all run. A
   * failure before they run ends those restored, and names the process that failed.
   */
  static async restore(
    image: Image,
    remapped: (preopens: Preopen[]) => Preopen[],
    options: MultiProcessOptions,
  ): Promise<MultiProcessContainer> {
    const parsed = v.safeParse(MultiProcessState, image.containerState(), { abortEarly: true });
    if (!parsed.success)
      throw new ContainerError(`${image.path}: the container's state is damaged: ${describeIssues(parsed.issues)}`);
    const state = parsed.output;
    const container = new MultiProcessContainer(state.members, options, state);
    container.printOutputs();
    let restoring = '';
    try {
      for (const guest of image.processes) {
        restoring = guest.name;
        const index = state.members.findIndex((m) => m.name === guest.name);
        if (index < 0) throw new ContainerError('the container state does not list it');
        const guestState = guest.state() as ContainerState;
        await container.launch(index, new Uint8Array(guest.module), async (plumbing) => {
          const loaded = await Container.load(guest, undefined, plumbing);
          await loaded.loadState({ ...guestState, preopens: remapped(guestState.preopens) });
          return loaded;
        });
      }
      restoring = '';
      await Promise.all(container.processes.map((p) => p.container.run()));
    } catch (error) {
      await container.stopAll('the restore failed');
      const who = restoring ? `process ${restoring}` : 'a process';
      throw new ContainerError(`cannot restore ${who} of ${image.path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    return container;
  }

  /** Prints the output of every process whose output comes to the owner, each line prefixed. */
  private printOutputs(): void {
    const width = Math.max(...this.members.map((m) => m.name.length));
    for (const member of this.members) {
      const prefix = `${member.name.padEnd(width)} | `;
      for (const stream of ['stdout', 'stderr'] as const) {
        const pair = member.output[stream];
        // Gone from a restored broker: its process had ended and all of it was printed.
        if (pair === undefined || !this.broker.has(pair)) continue;
        this.outputs.push(new PrefixedOutput(this.broker.ownerSide(pair), prefix, process[stream]));
      }
    }
  }

  /** Runs one process: its link to the broker, its host stdio, then `open` makes its Container. */
  private async launch(
    index: number,
    module: Uint8Array,
    open: (plumbing: ProcessPlumbing) => Promise<Container>,
  ): Promise<void> {
    const member = this.members[index]!;
    const channel = new MessageChannel();
    const flag = new Int32Array(new SharedArrayBuffer(4));
    serveOwnerLink(channel.port1, flag, (request: BrokerRequest) => this.broker.answer(index, request));
    const closeLink = () => channel.port1.close();
    // Processes not fed by a pipe read /dev/null; their stdout and stderr are pairs when prefixed.
    const stdio = { stdin: this.devNull, stdout: 1, stderr: 2 };
    let container: Container;
    try {
      container = await open({ index, link: { port: channel.port2, flag }, stdio });
    } catch (error) {
      closeLink();
      throw error;
    }
    const running: RunningProcess = { member, index, state: 'running', container, module, closeLink };
    this.processes.push(running);
    container.exited.then(
      (status) => this.end(running, { name: member.name, state: 'exited', status }),
      (error: unknown) =>
        this.end(running, { name: member.name, state: 'failed', status: 1, reason: (error as Error).message }),
    );
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
    // Its readers see the end of their input once it can write no more.
    this.broker.processEnded(running.index);
    running.closeLink();
    this.ends.push(end);
    this.options.onEnd?.(end);
    if (end.state !== 'stopped' && running.member.onExit === 'stop-container')
      void this.stopAll(`${running.member.name} ended (onExit: stop-container)`);
    if (this.ends.length === this.members.length) this.settle();
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

  /**
   * Writes one image of the whole container: stops every process (all stopped before any is
   * captured: then nothing moves in the pairs, the consistent cut), captures each and the
   * broker, writes the image, then resumes them all (`leaveRunning`, or when the image could not
   * be written) or ends the container, its output printed up to the cut and no further.
   */
  async checkpoint(request: CheckpointRequest): Promise<CheckpointReply> {
    const started = performance.now();
    const running = this.processes.filter((p) => p.state === 'running');
    const stops = await Promise.allSettled(running.map((p) => p.container.stop()));
    // A process that ended meanwhile is an end like any other (its end() released its pairs).
    const stopped = running.filter((_, i) => stops[i]!.status === 'fulfilled');
    await Promise.allSettled(running.filter((p) => !stopped.includes(p)).map((p) => p.container.exited));
    let written = false;
    try {
      const states = await Promise.all(stopped.map((p) => p.container.capture()));
      const state: MultiProcessState = { members: this.members, ends: [...this.ends], broker: this.broker.capture() };
      const manifest = writeContainerImage(
        request.image,
        {
          source: { isa: hostIsa(), node: process.version, host: hostname() },
          processes: stopped.map((p, i) => ({
            name: p.member.name,
            module: p.module,
            moduleDigest: sha256(p.module),
            memory: new Uint8Array(p.container.memory.buffer),
            state: states[i],
          })),
          container: state,
        },
        { archive: request.archive, compression: 'deflate' },
      );
      written = true;
      this.checkpointed = true;
      return {
        ok: true,
        image: request.image,
        memoryBytes: manifest.processes.reduce((n, p) => n + p.memory.bytes, 0),
        storedBytes: manifest.processes.reduce((n, p) => n + p.memory.storedBytes, 0),
        pauseMs: performance.now() - started,
      };
    } catch (error) {
      return { ok: false, error: `checkpoint failed: ${(error as Error).message}` };
    } finally {
      if (request.leaveRunning || !written) for (const p of stopped) p.container.resume();
      else {
        this.endedByCheckpoint = true;
        // What is left in the output pairs is the image's to print.
        for (const output of this.outputs) output.abandon();
        await this.stopAll(`checkpointed to ${request.image}`);
      }
    }
  }

  /** The container's exit status: 0 if every process exited with 0, else the first other status. */
  static statusOf(ends: ProcessEnd[]): number {
    return ends.find((end) => end.status !== undefined && end.status !== 0)?.status ?? 0;
  }
}

import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { sha256 } from '../build/manifest.js';
import { createStopFlag, type EngineState, type GlobalValue, requestStop } from '../engine/instance.js';
import { type ImageGuest, writeImage } from '../image/image.js';
import { RoamError } from '../platform/errors.js';
import { hostIsa } from '../platform/isa.js';
import type { WasiHostState } from '../wasi/host.js';
import type { NetworkOptions } from '../wasi/network.js';
import type { Preopen } from '../wasi/sandbox.js';
import type { CheckpointReply, CheckpointRequest } from './control-protocol.js';
import type { OwnerLink } from './owner-channel.js';
import type { LoopbackDelivery } from './shared-loopback.js';

/** The state of a stopped guest, as plain data: what a checkpoint image and a migration carry. */
export interface ContainerState {
  /** Where the guest's preopened directories were on the source; the destination may remap them. */
  preopens: Preopen[];
  engine: EngineState;
  globals: GlobalValue[];
  host: WasiHostState;
  /**
   * The container's epoch (docs/fencing.md): 1 from its start, raised by each migration (the
   * destination sets it before restoring); a restore keeps it, so an image carries it.
   */
  epoch?: number;
}

/**
 * How a container begins: a fresh start, or an incoming guest waiting for its state (memory of
 * `memoryBytes`, zeroed, ready for pages; `gateway`: where this node's gateway tunnel is, for a
 * guest that brings client connections along). `label` names the module in errors.
 */
export type ContainerSpec = { module: Uint8Array<ArrayBuffer>; label: string } & (
  | {
      kind: 'start';
      args: string[];
      env: Record<string, string>;
      preopens: Preopen[];
      network?: NetworkOptions;
      /** Refuse a plain module (it would run, but could never be stopped or moved). */
      migratableOnly?: boolean;
      /** One process of a container of several (multi-process.ts). */
      process?: ProcessPlumbing;
    }
  | { kind: 'incoming'; memoryBytes: number; gateway?: string; process?: ProcessPlumbing }
);

/**
 * What a process of a container of several is plugged into: `index` names it to the loopback
 * broker, reached through `link`; `stdio`: the host fds behind its stdin, stdout and stderr;
 * `pipes`: the broker's pairs that its stdin reads or its stdout writes instead (a fresh start
 * only: a restored guest's fds name their pairs).
 */
export interface ProcessPlumbing {
  index: number;
  link: OwnerLink;
  stdio: { stdin: number; stdout: number; stderr: number };
  pipes?: { stdin?: number; stdout?: number; stderr?: number };
}

/** What the guest thread is given: the spec and the stop flag it shares with its owner. */
export type GuestThreadInit = ContainerSpec & { stopFlag: Int32Array };

export type GuestCommand =
  | { op: 'capture' }
  | { op: 'resume' }
  | { op: 'restore'; state: ContainerState }
  /** A connection to a listener of this process, from another process of the container. */
  | { op: 'deliver'; delivery: LoopbackDelivery };

/** A failure on the guest thread: a RoamError keeps its code; anything else (a bug) its stack. */
export interface GuestFailure {
  message: string;
  code?: string;
  stack?: string;
}

export type GuestEvent =
  /** The instance exists; `memory` is its shared linear memory (absent for a plain module). */
  | { event: 'ready'; memory?: WebAssembly.Memory }
  | { event: 'stopped'; at: number }
  | { event: 'captured'; state: ContainerState }
  /** An incoming guest's state is loaded; it runs at the next resume. */
  | { event: 'loaded' }
  | { event: 'restored'; resumedAt: number }
  | { event: 'exited'; exitCode: number }
  | { event: 'failed'; failure: GuestFailure };

/** A container cannot start, restore or go on; the message says why, in one line. */
export class ContainerError extends RoamError {
  readonly code = 'ROAM_CONTAINER';
}

/** The guest is gone (it exited, failed or was stopped for good): what waited for it cannot happen. */
export class ContainerEndedError extends RoamError {
  readonly code = 'ROAM_CONTAINER_ENDED';
}

/** A RoamError raised on the guest thread, carried over with its code. */
export class GuestError extends RoamError {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * V8's default stack (about 1 MB) runs out long before a guest's own stack does (jq's tests
 * recurse 10000 deep), so guests run on a thread whose stack is this large.
 */
export const guestStackMiB = 256;

/**
 * Threads share the wall clock, not performance.now()'s origin: events carry wallClock() times,
 * which the owner converts back to its own scale.
 */
export const wallClock = () => performance.timeOrigin + performance.now();
const fromWallClock = (at: number) => at - performance.timeOrigin;

/**
 * One guest and its host, running on a thread of its own (with a large stack), driven by its owner
 * on this thread: `roam run` and `roam restore` here, and the container process of an agent alike.
 * A migratable guest's linear memory is shared, so the owner reads it while the guest runs
 * (pre-copy) and writes it before an incoming guest's state is restored. The guest thread writes
 * stdout and stderr straight to this process's fds 1 and 2.
 */
export class Container {
  /** Resolves with the guest's exit status; rejects if it fails or ends otherwise. */
  readonly exited: Promise<number>;
  /** Set once a checkpoint image of this container was written (it refers to its directories). */
  checkpointed = false;
  /** See ContainerState.epoch: what the state captured here says. */
  private epoch = 1;
  private readonly worker: Worker;
  private readonly stopFlag = createStopFlag();
  private readonly waiters: { want: GuestEvent['event']; resolve: (event: GuestEvent) => void }[] = [];
  private memoryObject: WebAssembly.Memory | undefined;
  private ended: Error | undefined;

  private constructor(private readonly spec: ContainerSpec) {
    this.worker = new Worker(new URL('./guest-thread-entry.js', import.meta.url), {
      workerData: { ...spec, stopFlag: this.stopFlag } satisfies GuestThreadInit,
      transferList: spec.process ? [spec.process.link.port] : [],
      resourceLimits: { stackSizeMb: guestStackMiB },
    });
    this.exited = new Promise((resolve, reject) => {
      this.worker.on('message', (event: GuestEvent) => {
        if (event.event === 'ready') this.memoryObject = event.memory;
        if (event.event === 'exited') {
          this.finish(new ContainerEndedError(`the guest exited with status ${event.exitCode}`));
          resolve(event.exitCode);
        } else if (event.event === 'failed') {
          const error = guestError(event.failure);
          this.finish(error);
          reject(error);
        } else {
          const index = this.waiters.findIndex((w) => w.want === event.event);
          if (index >= 0) this.waiters.splice(index, 1)[0]!.resolve(event);
        }
      });
      this.worker.on('error', (error) => {
        this.finish(error);
        reject(error);
      });
      this.worker.on('exit', () => {
        const error = new ContainerEndedError('the guest thread ended');
        this.finish(error);
        reject(error);
      });
    });
    this.exited.catch(() => undefined);
  }

  /** Starts the guest thread; resolves once its instance (and so its memory) exists. */
  static async open(spec: ContainerSpec): Promise<Container> {
    const container = new Container(spec);
    await container.waitFor('ready');
    return container;
  }

  /**
   * Rebuilds a container from a checkpoint image and runs it. `remap` replaces preopens by guest
   * path; the others must exist at the path they had on the source. `module` (checked against the
   * image's digest) can stand in for the module stored in the image. Resolves once the guest runs,
   * with the moment it began (performance.now() scale).
   */
  static async restore(
    image: ImageGuest,
    remap: Preopen[],
    options: { module?: Uint8Array<ArrayBuffer> } = {},
  ): Promise<{ container: Container; resumedAt: number }> {
    const container = await Container.load(image, options.module);
    try {
      const state = image.state() as ContainerState;
      const resumedAt = await container.restoreAndRun({ ...state, preopens: remapPreopens(state.preopens, remap) });
      return { container, resumedAt };
    } catch (error) {
      await container.terminate();
      throw error;
    }
  }

  /**
   * The first half of a restore: an incoming container whose memory holds the image's pages, its
   * state not loaded yet (restoreAndRun). `plumbing`: one process of a container of several.
   */
  static async load(
    image: ImageGuest,
    replacement?: Uint8Array<ArrayBuffer>,
    plumbing?: ProcessPlumbing,
  ): Promise<Container> {
    const module = replacement ?? new Uint8Array(image.module);
    const digest = sha256(module);
    if (digest !== image.manifest.module.digest) {
      throw new ContainerError(
        `wrong module: the image was taken from module ${image.manifest.module.digest.slice(0, 16)}…, this one is ${digest.slice(0, 16)}…`,
      );
    }
    const container = await Container.open({
      kind: 'incoming',
      module,
      label: 'image module',
      memoryBytes: image.manifest.memory.bytes,
      ...(plumbing ? { process: plumbing } : {}),
    });
    try {
      image.restoreMemory(new Uint8Array(container.memory.buffer));
      return container;
    } catch (error) {
      await container.terminate();
      throw error;
    }
  }

  /** True when the guest can be stopped and captured (it was instrumented by roam build). */
  get migratable(): boolean {
    return this.memoryObject !== undefined;
  }

  get memory(): WebAssembly.Memory {
    if (!this.memoryObject) throw new ContainerError(`${this.spec.label} is a plain module: build it with roam build`);
    return this.memoryObject;
  }

  /**
   * Stops the guest at its next migration point (or in the blocking call it is in); resolves with
   * the moment it stopped (on this thread's performance.now() scale).
   */
  async stop(): Promise<number> {
    const stopped = this.waitFor('stopped');
    requestStop(this.stopFlag);
    return fromWallClock(((await stopped) as Extract<GuestEvent, { event: 'stopped' }>).at);
  }

  /** The stopped guest's state; may be asked for right after stop(), before that resolves. */
  async capture(): Promise<ContainerState> {
    const captured = this.waitFor('captured');
    this.post({ op: 'capture' });
    return { ...((await captured) as Extract<GuestEvent, { event: 'captured' }>).state, epoch: this.epoch };
  }

  /**
   * An incoming guest: loads its state and runs it, with no round trip to this thread in between;
   * resolves once it was restored, with the moment it began to run (on this thread's
   * performance.now() scale); rejects if the state did not load.
   */
  async restoreAndRun(state: ContainerState): Promise<number> {
    this.epoch = state.epoch ?? 1;
    const restored = this.waitFor('restored');
    this.post({ op: 'restore', state });
    this.post({ op: 'resume' });
    return fromWallClock(((await restored) as Extract<GuestEvent, { event: 'restored' }>).resumedAt);
  }

  /**
   * An incoming guest, in two steps (a container of several loads every process before any runs):
   * loads its state; rejects if it did not load.
   */
  async loadState(state: ContainerState): Promise<void> {
    const loaded = this.waitFor('loaded');
    this.post({ op: 'restore', state });
    await loaded;
  }

  /** Runs a guest whose state loadState() loaded; resolves as restoreAndRun() does. */
  async run(): Promise<number> {
    const restored = this.waitFor('restored');
    this.post({ op: 'resume' });
    return fromWallClock(((await restored) as Extract<GuestEvent, { event: 'restored' }>).resumedAt);
  }

  /** Hands a connection of another process to a listener of this one. */
  deliver(delivery: LoopbackDelivery): void {
    this.post({ op: 'deliver', delivery });
  }

  /** Runs the guest again after stop(). */
  resume(): void {
    this.post({ op: 'resume' });
  }

  /** Ends the guest thread wherever it is (the guest's copy here is gone). */
  async terminate(): Promise<void> {
    await this.worker.terminate();
  }

  /**
   * Writes a checkpoint image of the running guest: stops it, captures it, writes the image, then
   * resumes it (`leaveRunning`, or when the image could not be written) or leaves it stopped.
   */
  async checkpoint(request: CheckpointRequest): Promise<CheckpointReply> {
    const started = performance.now();
    let written = false;
    try {
      await this.stop();
    } catch (error) {
      return { ok: false, error: `checkpoint failed: ${(error as Error).message}` };
    }
    try {
      const state = await this.capture();
      const manifest = writeImage(
        request.image,
        {
          source: { isa: hostIsa(), node: process.version, host: hostname() },
          module: this.spec.module,
          moduleDigest: sha256(this.spec.module),
          memory: new Uint8Array(this.memory.buffer),
          state,
        },
        { archive: request.archive, compression: 'deflate' },
      );
      written = true;
      this.checkpointed = true;
      return {
        ok: true,
        image: request.image,
        memoryBytes: manifest.memory.bytes,
        storedBytes: manifest.memory.storedBytes,
        pauseMs: performance.now() - started,
      };
    } catch (error) {
      return { ok: false, error: `checkpoint failed: ${(error as Error).message}` };
    } finally {
      if (request.leaveRunning || !written) this.resume();
    }
  }

  private post(command: GuestCommand): void {
    this.worker.postMessage(command);
  }

  private waitFor(want: GuestEvent['event']): Promise<GuestEvent> {
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve) => this.waiters.push({ want, resolve }));
  }

  private finish(error: Error): void {
    if (this.ended) return;
    this.ended = error;
    // Whoever waits for an event that will never come learns why.
    for (const waiter of this.waiters.splice(0)) waiter.resolve(Promise.reject(error) as never);
  }
}

/** A module file as a container spec wants it; a missing or unreadable file is a ContainerError. */
export async function readModuleFile(path: string): Promise<{ module: Uint8Array<ArrayBuffer>; label: string }> {
  try {
    const bytes = await readFile(path);
    return { module: new Uint8Array(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.length), label: path };
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ContainerError(missing ? `${path}: no such file` : `${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** A failure reported by the guest thread, as an error of this thread. */
function guestError(failure: GuestFailure): Error {
  if (failure.code) return new GuestError(failure.code, failure.message);
  const bug = new Error(failure.message);
  bug.stack = failure.stack ?? failure.message;
  return bug;
}

/**
 * The preopens of a restored guest: the source's, with `remap` replacing some by guest path; each
 * must be a directory here.
 */
export function remapPreopens(original: Preopen[], remap: Preopen[]): Preopen[] {
  const preopens = original.map((preopen) => {
    const replacement = remap.find((r) => r.guestPath === preopen.guestPath);
    const hostPath = resolve(replacement?.hostPath ?? preopen.hostPath);
    if (!existsSync(hostPath) || !statSync(hostPath).isDirectory()) {
      throw new ContainerError(
        `preopened directory ${preopen.guestPath}: ${hostPath} does not exist on this node (remap it with --dir HOST:${preopen.guestPath})`,
      );
    }
    return { guestPath: preopen.guestPath, hostPath };
  });
  for (const extra of remap) {
    if (!preopens.some((p) => p.guestPath === extra.guestPath)) {
      throw new ContainerError(
        `--dir ${extra.hostPath}:${extra.guestPath}: the image has no preopened directory ${extra.guestPath}`,
      );
    }
  }
  return preopens;
}

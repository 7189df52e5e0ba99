import { Worker } from 'node:worker_threads';
import { createStopFlag, requestStop } from '../engine/instance.js';
import type { NetworkOptions } from '../wasi/network.js';
import type { Preopen } from '../wasi/sandbox.js';
import type { ContainerState } from './container.js';
import { guestStackMiB } from './thread.js';

/**
 * How a guest thread begins: a fresh start, or an incoming migration waiting for its state (memory
 * of `memoryBytes`, zeroed, ready for pages; `gateway`: where this node's gateway tunnel is, for a
 * guest that brings client connections along).
 */
export type GuestThreadOptions = { modulePath: string } & (
  | { kind: 'start'; args: string[]; env: Record<string, string>; preopens: Preopen[]; network?: NetworkOptions }
  | { kind: 'incoming'; memoryBytes: number; gateway?: string }
);

/** What the thread is given: the options and the stop flag it shares with its owner. */
export type GuestThreadInit = GuestThreadOptions & { stopFlag: Int32Array };

export type GuestCommand = { op: 'capture' } | { op: 'resume' } | { op: 'restore'; state: ContainerState };

export type GuestEvent =
  | { event: 'ready'; memory: WebAssembly.Memory }
  | { event: 'stopped'; at: number }
  | { event: 'captured'; state: ContainerState }
  | { event: 'restored'; resumedAt: number }
  | { event: 'exited'; exitCode: number }
  | { event: 'failed'; message: string };

export class GuestThreadError extends Error {}

/**
 * Threads share the wall clock, not performance.now()'s origin: events carry wallClock() times,
 * which the owner converts back to its own scale.
 */
export const wallClock = () => performance.timeOrigin + performance.now();
const fromWallClock = (at: number) => at - performance.timeOrigin;

/**
 * The owner's side of a guest running on its own thread (with a large stack, see thread.ts). The
 * guest's linear memory is shared, so the owner can read it while the guest runs. The guest thread
 * writes stdout/stderr straight to this process's fds 1 and 2.
 */
export class GuestThread {
  /** Resolves with the guest's exit status; rejects if the thread fails. */
  readonly exited: Promise<number>;
  private readonly worker: Worker;
  private readonly stopFlag = createStopFlag();
  private readonly waiters: { want: GuestEvent['event']; resolve: (event: GuestEvent) => void }[] = [];
  private memoryObject: WebAssembly.Memory | undefined;
  private ended: Error | undefined;

  private constructor(options: GuestThreadOptions) {
    this.worker = new Worker(new URL('./guest-thread-entry.js', import.meta.url), {
      workerData: { ...options, stopFlag: this.stopFlag } satisfies GuestThreadInit,
      resourceLimits: { stackSizeMb: guestStackMiB },
    });
    this.exited = new Promise((resolve, reject) => {
      this.worker.on('message', (event: GuestEvent) => {
        if (event.event === 'ready') this.memoryObject = event.memory;
        if (event.event === 'exited') {
          this.finish(new GuestThreadError(`the guest exited with status ${event.exitCode}`));
          resolve(event.exitCode);
        } else if (event.event === 'failed') {
          this.finish(new GuestThreadError(event.message));
          reject(new GuestThreadError(event.message));
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
        const error = new GuestThreadError('the guest thread ended');
        this.finish(error);
        reject(error);
      });
    });
    this.exited.catch(() => undefined);
  }

  /** Starts the thread; resolves once its instance (and so its memory) exists. */
  static async open(options: GuestThreadOptions): Promise<GuestThread> {
    const thread = new GuestThread(options);
    await thread.waitFor('ready');
    return thread;
  }

  get memory(): WebAssembly.Memory {
    return this.memoryObject!;
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

  async capture(): Promise<ContainerState> {
    const captured = this.waitFor('captured');
    this.worker.postMessage({ op: 'capture' } satisfies GuestCommand);
    return ((await captured) as Extract<GuestEvent, { event: 'captured' }>).state;
  }

  /**
   * An incoming guest: loads its state and runs it, with no round trip to this thread in between;
   * resolves once it was restored, with the moment it began to run (on this thread's
   * performance.now() scale); rejects if the state did not load.
   */
  async restoreAndRun(state: ContainerState): Promise<number> {
    const restored = this.waitFor('restored');
    this.worker.postMessage({ op: 'restore', state } satisfies GuestCommand);
    this.worker.postMessage({ op: 'resume' } satisfies GuestCommand);
    return fromWallClock(((await restored) as Extract<GuestEvent, { event: 'restored' }>).resumedAt);
  }

  /** Runs the guest again after stop(). */
  resume(): void {
    this.worker.postMessage({ op: 'resume' } satisfies GuestCommand);
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

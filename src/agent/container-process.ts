import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { DirtyTrackingMethod } from '../migrate/dirty/tracker.js';
import type { MigrationMode, MigrationProgress, MigrationReport } from '../migrate/sender.js';
import { nodeCommand, nodeCommandEnv } from '../platform/foreign-node.js';
import { hostIsa } from '../platform/isa.js';
import type { NetworkOptions } from '../wasi/network.js';
import type { Preopen } from '../wasi/sandbox.js';

/** How the agent starts a container process (passed in its environment). */
export type ChildConfig = { id: string; modulePath: string; logPath: string; listenHost: string } & (
  | { kind: 'start'; args: string[]; env: Record<string, string>; preopens: Preopen[]; network?: NetworkOptions }
  | {
      kind: 'incoming';
      listenPort: number;
      ticket: string;
      /** The epoch this migration raises the container to: the only one this process accepts. */
      epoch: number;
      directories: string[];
      gateway?: string;
    }
);

export type ChildCommand =
  | MigrateOutCommand
  /** Settle an unsettled migration: ask the destination's agent again. */
  | { op: 'recover' }
  /** The answer to a `commit` event: whether the guest of that epoch may run (EpochFence.commit). */
  | { op: 'commit-answer'; epoch: number; granted: boolean };

export type MigrateOutCommand = {
  op: 'migrate-out';
  target: { host: string; port: number; ticket: string; epoch: number };
  mode: MigrationMode;
  maxRounds?: number;
  dirtyTracking?: DirtyTrackingMethod;
  hotFirst?: boolean;
  postCopyFallback?: boolean;
  /** Whether the destination can receive post-copy (for mode 'auto'). */
  destinationLazyRestore: boolean;
  /** The destination agent, asked to abort the epoch when its answer got lost (docs/fencing.md). */
  destinationAgent: { url: string; token: string };
};

export type ChildEvent =
  | { event: 'running' }
  | { event: 'listening'; port: number }
  | { event: 'exited'; exitCode: number }
  | { event: 'failed'; message: string }
  | { event: 'progress'; progress: MigrationProgress }
  | { event: 'migrated'; report: MigrationReport }
  | { event: 'migration-failed'; message: string }
  /** The answer to the commit was lost and the destination's agent cannot be asked: stopped here. */
  | { event: 'migration-unsettled'; reason: string }
  /** After `recover`: resumed here, moved (the destination ran it), or still unsettled. */
  | { event: 'settled'; outcome: 'resumed' | 'moved' | 'unsettled'; reason?: string }
  /** Incoming: the state arrived; may the guest of `epoch` run? (answered by commit-answer) */
  | { event: 'commit'; epoch: number };

/**
 * The agent's handle on one container process. Its stdout and stderr go to the log file; it
 * reports through IPC. A crash or kill of the process only ends this container.
 */
export class ContainerProcess {
  private readonly child: ChildProcess;
  private readonly listeners = new Set<(event: ChildEvent) => void>();
  /** Resolves when the process is gone, with how it ended. */
  readonly gone: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  /**
   * `eagerCompile`: compile all of the process's JavaScript up front (--no-lazy). A container's
   * first stop, capture and restore fall in a migration's downtime, where compiling their code on
   * first use cost 0.5-1.5 ms each (1 GiB post-copy, x64); under emulation it costs more at start
   * (about 1.2 s per incoming container under qemu-user) than it saves.
   */
  constructor(config: ChildConfig, options: { eagerCompile: boolean }) {
    const node = nodeCommand(hostIsa());
    const entry = fileURLToPath(new URL('./container-entry.js', import.meta.url));
    const log = openSync(config.logPath, 'a');
    try {
      this.child = spawn(node.command, [...node.args, ...(options.eagerCompile ? ['--no-lazy'] : []), entry], {
        stdio: ['ignore', log, log, 'ipc'],
        env: { ...nodeCommandEnv(node), ROAM_CONTAINER: JSON.stringify(config) },
      });
    } finally {
      closeSync(log);
    }
    this.child.on('message', (event: ChildEvent) => {
      for (const listener of this.listeners) listener(event);
    });
    this.gone = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
    // A failed spawn also ends in 'exit'; the error itself needs a listener not to crash the agent.
    this.child.on('error', () => undefined);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Calls `listener` for every event until it returns true. */
  on(listener: (event: ChildEvent) => boolean | undefined): void {
    const wrapped = (event: ChildEvent) => {
      if (listener(event) === true) this.listeners.delete(wrapped);
    };
    this.listeners.add(wrapped);
  }

  /** The first of these events; rejects if the process ends before one comes. */
  waitFor<E extends ChildEvent['event']>(...events: E[]): Promise<Extract<ChildEvent, { event: E }>> {
    return new Promise((resolve, reject) => {
      let done = false;
      this.on((event) => {
        if (done || !(events as string[]).includes(event.event)) return done;
        done = true;
        resolve(event as Extract<ChildEvent, { event: E }>);
        return true;
      });
      void this.gone.then(({ code, signal }) => {
        if (!done) reject(new Error(`the container process ended (${signal ?? `exit code ${code}`})`));
        done = true;
      });
    });
  }

  send(command: ChildCommand): void {
    this.child.send(command);
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

import type { ModuleManifest } from '../build/manifest.js';
import { wasmPageBytes } from '../build/module-binary.js';
import { RoamError } from '../platform/errors.js';
import { Asyncify, AsyncifyState } from './asyncify.js';
import { type Blocker, synchronousBlocker } from './blocking.js';
import { type LoadedModule, ModuleLoadError } from './module.js';
import { setjmpImports } from './setjmp.js';

/** What the engine needs from a system-interface host (the WASI host implements it). */
export interface GuestHost {
  /**
   * The import modules the host provides, by module name (the WASI host: wasi_snapshot_preview1
   * and roam_posix). Functions the manifest lists as suspending are wrapped, whatever their module.
   */
  imports(): Record<string, WebAssembly.ModuleImports>;
  bindMemory(memory: WebAssembly.Memory): void;
  /** Plain JSON-able state; the caller rebuilds a host from it on restore. */
  capture(): unknown;
  /**
   * True when a timer of the guest's has expired: at its next migration point the engine calls
   * the guest's `roam_timer_expired` export (the POSIX layer raises SIGALRM there).
   */
  timerDue?(): boolean;
}

/** A global's value as plain data (i64 as a decimal string: JSON has no BigInt). */
export type GlobalValue = number | { i64: string };

/**
 * A stopped instance as plain data: linear memory (which holds the unwound stack), every mutable
 * global, the engine's own state and the host's. All of it is ISA-neutral.
 */
export interface InstanceSnapshot {
  /** A view of live memory: write it out before the instance runs again. */
  memory: Uint8Array;
  globals: GlobalValue[];
  engine: EngineState;
  host: unknown;
}

export interface EngineState {
  /** Memo of the blocking call the guest was in, re-run after a restore (e.g. a sleep's deadline). */
  resumeMemo: unknown;
  /** Bytes of unwound frames in the Asyncify buffer (informational). */
  stackBytes: number;
}

/** An instance cannot be captured or restored as asked (not stopped, plain module, mismatched snapshot). */
export class SnapshotError extends RoamError {
  readonly code = 'ROAM_SNAPSHOT';
}

/** WASI's EINTR: a blocking call made by a signal handler is interrupted instead of waiting. */
const interrupted = 27;

/** How a run ended: the guest exited (proc_exit or returning from _start), or it was stopped on request. */
export type RunOutcome = { kind: 'exited'; exitCode: number } | { kind: 'stopped' };

/**
 * A stop request shared across threads: element 0 becomes non-zero (and is notified) when the
 * guest should stop at its next migration point or blocking call.
 */
export type StopFlag = Int32Array;

export function createStopFlag(): StopFlag {
  return new Int32Array(new SharedArrayBuffer(4));
}

export function requestStop(flag: StopFlag): void {
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}

/** The guest trapped (unreachable, out-of-bounds access, call stack exhausted...): its own fault. */
export class GuestTrap extends RoamError {
  readonly code = 'ROAM_GUEST_TRAP';
}

/**
 * One running module on this node's V8. An instrumented module runs as an async loop: whenever
 * the guest unwinds (a blocking call, a stop request) the loop awaits, then rewinds it.
 */
export class Instance {
  readonly manifest: ModuleManifest | undefined;
  private readonly instance: WebAssembly.Instance;
  private readonly host: GuestHost;
  private readonly memory: WebAssembly.Memory;
  private readonly asyncify: Asyncify | undefined;
  private pendingWait: { ready: Promise<unknown>; memo: unknown } | undefined;
  private resumeMemo: unknown;
  /** Set while the guest is unwound by a stop request (its frames are in the Asyncify buffer). */
  private stopped = false;
  /**
   * Set while a signal handler runs, called from a migration point: nothing may unwind the guest
   * then (its outer frames are in the middle of a call), so stops wait and blocking calls get EINTR.
   */
  private inSignalHandler = false;

  /**
   * @param makeHost builds the host given the Blocker this instance provides (suspending for
   *   instrumented modules, synchronous for plain ones).
   * @param isExit recognizes the host's exit signal (WASI proc_exit) and returns its code.
   */
  constructor(
    loaded: LoadedModule,
    makeHost: (blocker: Blocker) => GuestHost,
    private readonly isExit: (error: unknown) => number | undefined,
    private readonly stopFlag: StopFlag = createStopFlag(),
  ) {
    this.manifest = loaded.manifest;
    const host = makeHost(this.manifest ? this.suspendingBlocker() : synchronousBlocker);
    this.host = host;
    const hostImports = this.manifest ? this.wrapSuspending(host.imports()) : host.imports();
    const sjlj = setjmpImports(loaded.module, () => this.instance.exports);
    const roam: WebAssembly.ModuleImports = {
      ...sjlj.roam,
      migration_point: this.wrapSuspendingImport(() => this.migrationPoint()),
    };
    this.instance = new WebAssembly.Instance(loaded.module, { ...hostImports, env: sjlj.env!, roam });
    const memory = this.instance.exports.memory;
    if (!(memory instanceof WebAssembly.Memory))
      throw new ModuleLoadError('ROAM_MODULE_INVALID', 'module exports no memory');
    this.memory = memory;
    host.bindMemory(memory);
    this.asyncify = this.manifest ? new Asyncify(this.instance.exports, memory, this.manifest) : undefined;
  }

  /** True when the guest can be stopped and captured (it was instrumented by roam build). */
  get migratable(): boolean {
    return this.asyncify !== undefined;
  }

  /**
   * Runs the guest (from _start, or onward from where it stopped) until it exits or a stop is
   * requested through the stop flag.
   */
  async run(): Promise<RunOutcome> {
    const start = this.instance.exports._start as () => void;
    if (typeof start !== 'function')
      throw new ModuleLoadError('ROAM_MODULE_INVALID', 'module has no _start export (is it a WASI command?)');
    if (this.stopped) {
      // The flag was cleared when the stop was honored: a request made since (even before this
      // run began) still stands and stops the guest again at its next migration point.
      this.stopped = false;
      this.asyncify!.startRewind();
    }
    for (;;) {
      const exited = this.enter(start);
      if (exited) return exited;
      const asyncify = this.asyncify;
      if (asyncify?.state !== AsyncifyState.Unwinding) return { kind: 'exited', exitCode: 0 };
      asyncify.stopUnwind();
      const wait = this.pendingWait;
      this.pendingWait = undefined;
      if (wait) {
        // A stop may arrive while the guest waits; the call is simply re-run after a resume.
        const stop = Atomics.waitAsync(this.stopFlag, 0, 0);
        const outcome = await Promise.race([
          wait.ready.then(
            () => 'ready',
            () => 'ready', // a failed wait is reported by the re-run call itself
          ),
          stop.async ? stop.value.then(() => 'stop') : Promise.resolve('stop'),
        ]);
        this.resumeMemo = wait.memo;
        if (outcome === 'stop') return this.honorStop();
      } else if (this.stopRequested()) {
        return this.honorStop();
      }
      asyncify.startRewind();
    }
  }

  /** The state of a stopped instance. The instance may run again afterwards (checkpoint and continue). */
  capture(): InstanceSnapshot {
    if (!this.stopped) throw new SnapshotError('only a stopped instance can be captured');
    return {
      memory: new Uint8Array(this.memory.buffer),
      globals: this.manifest!.globalExports.map((name) => {
        const value = (this.instance.exports[name] as WebAssembly.Global).value as number | bigint;
        return typeof value === 'bigint' ? { i64: value.toString() } : value;
      }),
      engine: { resumeMemo: this.resumeMemo, stackBytes: this.asyncify!.usedBytes() },
      host: this.host.capture(),
    };
  }

  /** The guest's linear memory (shared: another thread may read it while the guest runs). */
  get linearMemory(): WebAssembly.Memory {
    return this.memory;
  }

  /**
   * Loads a snapshot into this fresh instance (built with a host restored from snapshot.host);
   * the next run() rewinds the guest to where it stopped. `fillMemory` writes the checkpointed
   * pages into memory that is already the right size and all zero.
   */
  restore(
    snapshot: { memoryBytes: number; globals: GlobalValue[]; engine: EngineState },
    fillMemory: (memory: Uint8Array) => void,
  ): void {
    fillMemory(this.resetMemory(snapshot.memoryBytes));
    this.restoreState(snapshot);
  }

  /**
   * First half of a restore: zeroes this fresh instance's memory (it holds the data segments; a
   * snapshot's zero pages must read as zero) and grows it to `memoryBytes`, ready for the pages.
   */
  resetMemory(memoryBytes: number): Uint8Array {
    if (!this.asyncify) throw new SnapshotError('a plain module cannot be restored: build it with roam build');
    const current = this.memory.buffer.byteLength;
    if (memoryBytes < current || memoryBytes % wasmPageBytes !== 0) {
      throw new SnapshotError(`snapshot memory size ${memoryBytes} does not fit this module`);
    }
    new Uint8Array(this.memory.buffer, 0, current).fill(0);
    this.memory.grow((memoryBytes - current) / wasmPageBytes);
    return new Uint8Array(this.memory.buffer);
  }

  /** Second half of a restore, once memory holds the snapshot's pages: globals and engine state. */
  restoreState(snapshot: { globals: GlobalValue[]; engine: EngineState }): void {
    if (!this.asyncify) throw new SnapshotError('a plain module cannot be restored: build it with roam build');
    const names = this.manifest!.globalExports;
    if (snapshot.globals.length !== names.length) throw new SnapshotError('snapshot globals do not match this module');
    names.forEach((name, i) => {
      const value = snapshot.globals[i]!;
      (this.instance.exports[name] as WebAssembly.Global).value = typeof value === 'number' ? value : BigInt(value.i64);
    });
    this.resumeMemo = snapshot.engine.resumeMemo;
    this.stopped = true;
  }

  private honorStop(): RunOutcome {
    this.stopped = true;
    Atomics.store(this.stopFlag, 0, 0);
    return { kind: 'stopped' };
  }

  private stopRequested(): boolean {
    return Atomics.load(this.stopFlag, 0) !== 0;
  }

  private enter(start: () => void): RunOutcome | undefined {
    try {
      start();
      return undefined;
    } catch (error) {
      const code = this.isExit(error);
      if (code !== undefined) return { kind: 'exited', exitCode: code };
      if (error instanceof WebAssembly.RuntimeError)
        throw new GuestTrap(`guest trapped: ${error.message}`, { cause: error });
      // V8's own stack (recursion depth) can run out before the guest's shadow stack does.
      if (error instanceof RangeError && /call stack/i.test(error.message))
        throw new GuestTrap('guest trapped: call stack exhausted', { cause: error });
      throw error;
    }
  }

  private suspendingBlocker(): Blocker {
    return {
      canSuspend: true,
      takeResumeMemo: () => {
        const memo = this.resumeMemo;
        this.resumeMemo = undefined;
        return memo;
      },
      suspend: (ready, memo) => {
        if (this.inSignalHandler) return interrupted;
        this.pendingWait = { ready, memo };
        this.asyncify!.startUnwind();
        return 0;
      },
    };
  }

  /** The polled half of a migration point: refill the countdown, unwind if a stop was requested. */
  private migrationPoint(): void {
    const budget = this.instance.exports.roam_budget as WebAssembly.Global;
    budget.value = this.manifest!.options.pollInterval;
    if (this.inSignalHandler) return;
    if (this.host.timerDue?.()) this.runTimerHandler();
    if (this.stopRequested()) this.asyncify!.startUnwind();
  }

  /** An expired timer: the guest's POSIX layer raises its signal, handlers run to their end here. */
  private runTimerHandler(): void {
    const expired = this.instance.exports.roam_timer_expired;
    if (typeof expired !== 'function') return;
    this.inSignalHandler = true;
    try {
      expired();
    } finally {
      this.inSignalHandler = false;
    }
  }

  /**
   * The host's modules with every function the manifest lists as suspending (`module.field`, a
   * trailing `*` matching any suffix) wrapped; the engine's own modules (env, roam) are not the
   * host's and are left alone here.
   */
  private wrapSuspending(
    modules: Record<string, WebAssembly.ModuleImports>,
  ): Record<string, WebAssembly.ModuleImports> {
    const wrapped: Record<string, WebAssembly.ModuleImports> = {};
    for (const [module, imports] of Object.entries(modules)) wrapped[module] = { ...imports };
    for (const name of this.manifest!.suspendingImports) {
      const dot = name.indexOf('.');
      const module = name.slice(0, dot);
      const field = name.slice(dot + 1);
      const imports = modules[module];
      if (dot < 0 || imports === undefined) continue;
      const matches = field.endsWith('*')
        ? Object.keys(imports).filter((key) => key.startsWith(field.slice(0, -1)))
        : [field];
      for (const key of matches) {
        const fn = imports[key];
        if (typeof fn === 'function')
          wrapped[module]![key] = this.wrapSuspendingImport(fn as (...args: never[]) => unknown);
      }
    }
    return wrapped;
  }

  /** A suspending import is re-entered on rewind: it ends the rewind, then runs as a fresh call. */
  private wrapSuspendingImport<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
    return (...args: A) => {
      if (this.asyncify?.state === AsyncifyState.Rewinding) this.asyncify.stopRewind();
      return fn(...args);
    };
  }
}

import type { ModuleManifest } from '../build/manifest.js';
import { wasmPageBytes } from '../build/module-binary.js';
import { Asyncify, AsyncifyState } from './asyncify.js';
import { type Blocker, synchronousBlocker } from './blocking.js';
import { GuestTrap, SnapshotError } from './errors.js';
import { type LoadedModule, ModuleLoadError } from './module.js';
import { setjmpImports } from './setjmp.js';
import { FutexResult, mainThreadId, Scheduler, type Thread, ThreadExit, type ThreadsState } from './threads.js';

export { GuestTrap, SnapshotError } from './errors.js';

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
  /**
   * True when the host's I/O arrives through Node's event loop (client connections through the
   * gateway): a guest that computes, or polls without waiting, then still lets it turn.
   */
  usesEventLoop?(): boolean;
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
  /** Every green thread: where it unwound to, what it waits for, the memo of its blocking call. */
  threads: ThreadsState;
  /** Bytes of unwound frames in the running thread's Asyncify buffer (informational). */
  stackBytes: number;
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

/** roam_thread.spawn's answers besides a thread id. */
const SpawnFailed = { limit: -1, notMigratable: -2 } as const;

/** The memo of a thread that yielded. */
const yielded = 'yielded';

/** A thread that keeps switching to others still lets Node's event loop in this often (I/O, timers). */
const eventLoopTurnMs = 2;
/**
 * A guest that computes (or polls with no timeout, as Redis does while a script runs) for this
 * long unwinds at a migration point to let the event loop turn, when its host's I/O needs it.
 */
const eventLoopStarvedMs = 10;

/**
 * One running module on this node's V8. An instrumented module runs as an async loop over its
 * green threads (threads.ts): whenever the running thread unwinds (a blocking call, a futex wait,
 * the end of its slice, a stop request) the loop picks the next runnable one and rewinds it, and
 * awaits when none can run.
 */
export class Instance {
  readonly manifest: ModuleManifest | undefined;
  private readonly instance: WebAssembly.Instance;
  private readonly host: GuestHost;
  private readonly memory: WebAssembly.Memory;
  private readonly asyncify: Asyncify | undefined;
  private readonly scheduler: Scheduler | undefined;
  /** Set while the guest is unwound by a stop request (its frames are in the Asyncify buffers). */
  private stopped = false;
  private lastEventLoopTurn = performance.now();
  private stopWaiter: Promise<'stop'> | undefined;
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
    const sjlj = setjmpImports(
      loaded.module,
      () => this.instance.exports,
      () => this.asyncify?.rewindTable(),
    );
    const roam: WebAssembly.ModuleImports = {
      ...sjlj.roam,
      migration_point: this.wrapSuspendingImport(() => this.migrationPoint()),
    };
    this.instance = new WebAssembly.Instance(loaded.module, {
      ...hostImports,
      env: sjlj.env!,
      roam,
      roam_thread: this.threadImports(),
    });
    const memory = this.instance.exports.memory;
    if (!(memory instanceof WebAssembly.Memory))
      throw new ModuleLoadError('ROAM_MODULE_INVALID', 'module exports no memory');
    this.memory = memory;
    host.bindMemory(memory);
    this.asyncify = this.manifest ? new Asyncify(this.instance.exports, memory, this.manifest) : undefined;
    this.scheduler = this.asyncify
      ? new Scheduler(this.asyncify.mainBuffer, this.asyncify.stackPointer.value as number)
      : undefined;
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
    if (!this.scheduler) return this.enterPlain(start);
    // The flag was cleared when the stop was honored: a request made since (even before this
    // run began) still stands and stops the guest again at its next migration point.
    this.stopped = false;
    this.lastEventLoopTurn = performance.now(); // the guest starts running within this call
    for (;;) {
      // Switching between runnable threads stays synchronous; awaiting costs microseconds.
      const ready = this.eventLoopDue() ? undefined : this.scheduler.pickNext();
      const thread = ready ?? (await this.nextThread(this.scheduler));
      if (!thread) return this.honorStop();
      const exited = this.enter(thread, start);
      if (exited) return exited;
      if (this.stopRequested()) return this.honorStop();
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
      engine: {
        threads: this.scheduler!.capture(),
        stackBytes: this.asyncify!.usedBytes(this.scheduler!.current.buffer),
      },
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
    if (!this.scheduler) throw new SnapshotError('a plain module cannot be restored: build it with roam build');
    const names = this.manifest!.globalExports;
    if (snapshot.globals.length !== names.length) throw new SnapshotError('snapshot globals do not match this module');
    names.forEach((name, i) => {
      const value = snapshot.globals[i]!;
      (this.instance.exports[name] as WebAssembly.Global).value = typeof value === 'number' ? value : BigInt(value.i64);
    });
    this.scheduler.restore(snapshot.engine.threads);
    this.stopped = true;
  }

  /**
   * Settles when a stop is requested; undefined if one already is. One waiter on the flag serves
   * every wait until the stop is honoured (a waiter per wait would pile up in a server that waits
   * for each request).
   */
  private stopSignal(): Promise<'stop'> | undefined {
    if (this.stopRequested()) return undefined;
    if (!this.stopWaiter) {
      const wait = Atomics.waitAsync(this.stopFlag, 0, 0);
      if (!wait.async) return undefined;
      this.stopWaiter = wait.value.then(() => 'stop' as const);
    }
    return this.stopWaiter;
  }

  private honorStop(): RunOutcome {
    this.stopped = true;
    this.stopWaiter = undefined; // settled by the request's notify
    this.scheduler!.forgetHostWaits();
    Atomics.store(this.stopFlag, 0, 0);
    return { kind: 'stopped' };
  }

  private stopRequested(): boolean {
    return Atomics.load(this.stopFlag, 0) !== 0;
  }

  /**
   * The next thread to run, awaiting while all of them wait; undefined when a stop came first.
   * Now and then it lets Node's event loop turn, or threads that keep switching among themselves
   * would starve the I/O a waiting thread needs.
   */
  private async nextThread(scheduler: Scheduler): Promise<Thread | undefined> {
    for (;;) {
      if (this.eventLoopDue()) {
        await new Promise(setImmediate);
        this.lastEventLoopTurn = performance.now();
      }
      const next = scheduler.pickNext();
      if (next) return next;
      const stop = this.stopSignal();
      if (!stop) return undefined;
      // With no event to come (every thread waits on a futex for ever) only a stop ends the wait.
      const event = scheduler.nextEvent();
      const outcome = await Promise.race([
        stop,
        event?.ready.then(() => 'event' as const) ?? new Promise<never>(() => {}),
      ]);
      event?.cancel();
      this.lastEventLoopTurn = performance.now();
      if (outcome === 'stop') return undefined;
    }
  }

  private eventLoopDue(): boolean {
    return performance.now() - this.lastEventLoopTurn > eventLoopTurnMs;
  }

  private eventLoopStarved(): boolean {
    return this.host.usesEventLoop?.() === true && performance.now() - this.lastEventLoopTurn > eventLoopStarvedMs;
  }

  /** Runs one thread until it unwinds or ends; an outcome when the whole guest ended. */
  private enter(thread: Thread, start: () => void): RunOutcome | undefined {
    const asyncify = this.asyncify!;
    const scheduler = this.scheduler!;
    asyncify.stackPointer.value = thread.stackPointer;
    this.swapLocals(thread, 'in');
    if (thread.started) asyncify.startRewind(thread.buffer);
    thread.started = true;
    const ended = this.call(() => {
      if (thread.id === mainThreadId) (asyncify.rewindEntry('start') ?? start)();
      else
        (asyncify.rewindEntry('threadStart') ?? (this.instance.exports.roam_thread_start as (start: number) => void))(
          thread.start,
        );
    });
    if (ended === 'thread-exit' || (ended === undefined && asyncify.state !== AsyncifyState.Unwinding)) {
      // Returning from _start is the process's exit(0); another thread's end is only its own.
      if (ended === undefined && thread.id === mainThreadId) return { kind: 'exited', exitCode: 0 };
      scheduler.exitCurrent();
      return scheduler.empty ? { kind: 'exited', exitCode: 0 } : undefined;
    }
    if (ended !== undefined) return ended;
    asyncify.stopUnwind(thread.buffer);
    thread.stackPointer = asyncify.stackPointer.value as number;
    this.swapLocals(thread, 'out');
    return undefined;
  }

  /** A plain module: no threads, no stops; it runs to its end. */
  private enterPlain(start: () => void): RunOutcome {
    const ended = this.call(start);
    return ended === undefined || ended === 'thread-exit' ? { kind: 'exited', exitCode: 0 } : ended;
  }

  /** Calls into the guest: undefined when the call returned (or unwound), else how it ended. */
  private call(entry: () => void): RunOutcome | 'thread-exit' | undefined {
    try {
      entry();
      return undefined;
    } catch (error) {
      if (error instanceof ThreadExit) return 'thread-exit';
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

  /**
   * wasi-libc has no thread-local storage: errno and the signal mask are one variable each for
   * all threads. The guest names them (roam_thread.thread_local) and each thread keeps its values.
   */
  private swapLocals(thread: Thread, direction: 'in' | 'out'): void {
    const locals = this.scheduler!.locals;
    if (locals.length === 0) return;
    if (direction === 'in') {
      let at = 0;
      for (const range of locals) {
        new Uint8Array(this.memory.buffer, range.address, range.bytes).set(
          thread.locals.subarray(at, at + range.bytes),
        );
        at += range.bytes;
      }
    } else {
      thread.locals = this.readLocals();
    }
  }

  /** The current contents of the per-thread ranges, in their order. */
  private readLocals(): Uint8Array {
    const locals = this.scheduler!.locals;
    const values = new Uint8Array(locals.reduce((n, r) => n + r.bytes, 0));
    let at = 0;
    for (const range of locals) {
      values.set(new Uint8Array(this.memory.buffer, range.address, range.bytes), at);
      at += range.bytes;
    }
    return values;
  }

  private suspendingBlocker(): Blocker {
    return {
      canSuspend: true,
      takeResumeMemo: () => this.scheduler!.takeResumeMemo(),
      suspend: (ready, memo) => {
        if (this.inSignalHandler) return interrupted;
        this.scheduler!.waitForHost(ready, memo);
        this.asyncify!.startUnwind(this.scheduler!.current.buffer);
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
    const scheduler = this.scheduler!;
    if (this.stopRequested() || scheduler.sliceOver() || this.eventLoopStarved())
      this.asyncify!.startUnwind(scheduler.current.buffer);
  }

  /**
   * The `roam_thread` import module: what the guest's pthreads (runtime/posix/pthread.c) are built
   * on. A plain module cannot switch threads: it gets none, and a futex wait sleeps or fails.
   */
  private threadImports(): WebAssembly.ModuleImports {
    return {
      spawn: (start: number, bufferAddress: number, bufferBytes: number, stackTop: number): number => {
        if (!this.scheduler) return SpawnFailed.notMigratable;
        const buffer = { address: bufferAddress, bytes: bufferBytes };
        return this.scheduler.spawn(start, buffer, stackTop, this.readLocals())?.id ?? SpawnFailed.limit;
      },
      exit: (): never => {
        throw new ThreadExit();
      },
      thread_local: (address: number, bytes: number): void => {
        const range = { address, bytes };
        this.scheduler?.addLocal(range, new Uint8Array(this.memory.buffer, address, bytes).slice());
      },
      futex_wait: this.wrapSuspendingImport((address: number, expected: number, timeoutNs: bigint): number =>
        this.futexWait(address, expected, Number(timeoutNs)),
      ),
      futex_wake: (address: number, count: number): number => this.scheduler?.wakeFutex(address, count) ?? 0,
      yield: this.wrapSuspendingImport((): void => {
        const scheduler = this.scheduler;
        // The call is re-made when the thread runs again: that second call has yielded already.
        if (!scheduler || this.inSignalHandler || scheduler.takeResumeMemo() === yielded) return;
        scheduler.current.resumeMemo = yielded;
        this.asyncify!.startUnwind(scheduler.current.buffer);
      }),
    };
  }

  /** Blocks the running thread while the futex word at `address` holds `expected` (re-run once woken). */
  private futexWait(address: number, expected: number, timeoutNs: number): number {
    const scheduler = this.scheduler;
    if (scheduler) {
      const memo = scheduler.takeResumeMemo() as { futex?: number } | undefined;
      if (memo?.futex !== undefined) return memo.futex;
    }
    if (new DataView(this.memory.buffer, address, 4).getInt32(0, true) !== expected) return FutexResult.valueChanged;
    if (timeoutNs === 0) return FutexResult.timedOut;
    if (!scheduler || this.inSignalHandler) {
      // Nothing else can run to wake it: a timed wait sleeps, an endless one would never end.
      if (timeoutNs < 0) throw new GuestTrap('deadlock: the only thread waits on a futex with no timeout');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, timeoutNs / 1e6);
      return FutexResult.timedOut;
    }
    scheduler.waitFutex(address, timeoutNs);
    this.asyncify!.startUnwind(scheduler.current.buffer);
    return 0;
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
      if (this.asyncify?.rewinding) this.asyncify.stopRewind();
      return fn(...args);
    };
  }
}

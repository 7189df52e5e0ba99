import * as v from 'valibot';
import { describeIssues } from '../platform/schema.js';
import { SnapshotError } from './errors.js';

/**
 * Green threads: all of a guest's threads take turns on its one wasm thread. A thread leaves the
 * CPU only by unwinding (Asyncify) into a buffer of its own at the bottom of its own stack block:
 * when it blocks (a futex wait, a blocking host call) or yields, or when its time slice ends at a
 * migration point. So at any moment every thread but the running one is unwound, and a stop
 * unwinds the last one: all of them are then plain data in linear memory plus the records below,
 * which is what makes a threaded guest as movable across ISAs as a single-threaded one.
 *
 * The guest's POSIX layer (runtime/posix/pthread.c) builds mutexes, condition variables and the
 * rest on two primitives here, futex wait and wake, as musl does on Linux's futex.
 */

/** The main thread's id; others count up from it. */
export const mainThreadId = 1;
/** More threads than this at once: pthread_create fails with EAGAIN. */
export const maxThreads = 1024;
/** How long a thread runs before another runnable one gets the CPU at a migration point. */
export const timeSliceMs = 10;

/** What a thread waits for, as captured. A wait for the host (I/O) is captured as runnable: the call is re-run. */
const waitSchema = v.variant('kind', [
  v.object({ kind: v.literal('runnable') }),
  v.object({
    kind: v.literal('futex'),
    address: v.number(),
    /** Nanoseconds left of its timeout when captured (time stopped for a move does not count). */
    remainingNs: v.optional(v.number()),
  }),
]);

const regionSchema = v.object({ address: v.number(), bytes: v.number() });

export const threadStateSchema = v.object({
  id: v.number(),
  /** Argument of the guest's roam_thread_start export (its thread record); 0 for the main thread. */
  start: v.number(),
  /** Where the thread unwinds to (the main thread's is the one roam build reserved). */
  buffer: regionSchema,
  stackPointer: v.number(),
  /** Its values of the guest's per-thread ranges (base64), while it is not running. */
  locals: v.string(),
  /** Entered at least once: when not running, its frames are in its buffer. */
  started: v.boolean(),
  wait: waitSchema,
  /** Memo of the blocking call it was in, handed back when that call is re-run. */
  resumeMemo: v.optional(v.unknown()),
});

export const threadsStateSchema = v.object({
  threads: v.array(threadStateSchema),
  /** The thread that was running (it unwound for the stop). */
  current: v.number(),
  nextId: v.number(),
  /** Guest memory each thread has its own value of (errno, the signal mask): swapped at each switch. */
  locals: v.array(regionSchema),
});

export type ThreadState = v.InferOutput<typeof threadStateSchema>;
export type ThreadsState = v.InferOutput<typeof threadsStateSchema>;
/** A range of guest memory. */
type Region = v.InferOutput<typeof regionSchema>;

/** How a futex wait ended, as the guest's roam_thread.futex_wait returns it. */
export const FutexResult = { woken: 0, valueChanged: 1, timedOut: 2 } as const;

/** Thrown by roam_thread.exit to leave the thread's frames behind; caught where the thread was entered. */
export class ThreadExit {}

type Wait =
  | { kind: 'runnable' }
  | { kind: 'futex'; address: number; deadline: number | undefined }
  | { kind: 'host'; ready: Promise<unknown>; settled: boolean };

export class Thread {
  wait: Wait = { kind: 'runnable' };
  resumeMemo: unknown;
  constructor(
    readonly id: number,
    readonly start: number,
    readonly buffer: Region,
    public stackPointer: number,
    /** Its values of the per-thread ranges, in their order, while it is not running. */
    public locals: Uint8Array,
    public started: boolean,
  ) {}
}

/** Milliseconds on a monotonic clock (deadlines of timed futex waits). */
const now = () => performance.now();

export class Scheduler {
  private readonly threads: Thread[] = [];
  private currentThread: Thread;
  private nextId = mainThreadId + 1;
  private sliceStart = now();
  /** Ranges of guest memory that are per thread (the guest names them: roam_thread.thread_local). */
  readonly locals: Region[] = [];

  constructor(mainBuffer: Region, stackPointer: number) {
    this.currentThread = new Thread(mainThreadId, 0, mainBuffer, stackPointer, new Uint8Array(), false);
    this.threads.push(this.currentThread);
  }

  get current(): Thread {
    return this.currentThread;
  }

  /** More than the main thread has ever existed (the captured form then needs the records). */
  get threaded(): boolean {
    return this.nextId > mainThreadId + 1;
  }

  /**
   * A new runnable thread that will enter roam_thread_start(start) on its own stack, its
   * per-thread values starting as `locals` (the creator's: a new thread inherits its signal
   * mask); undefined at the limit.
   */
  spawn(start: number, buffer: Region, stackTop: number, locals: Uint8Array): Thread | undefined {
    if (this.threads.length >= maxThreads) return undefined;
    const thread = new Thread(this.nextId++, start, buffer, stackTop, locals, false);
    this.threads.push(thread);
    return thread;
  }

  /**
   * A range of guest memory becomes per thread; every thread's value starts as `value`, the
   * range's contents now. False if it already was.
   */
  addLocal(range: Region, value: Uint8Array): boolean {
    if (this.locals.some((r) => r.address === range.address)) return false;
    this.locals.push(range);
    for (const thread of this.threads) thread.locals = concat(thread.locals, value);
    return true;
  }

  /** The running thread ended (pthread_exit, or the main thread's pthread_exit). */
  exitCurrent(): void {
    this.threads.splice(this.threads.indexOf(this.currentThread), 1);
  }

  get empty(): boolean {
    return this.threads.length === 0;
  }

  /** The running thread waits on a futex word until woken or `timeoutNs` passes (negative: no timeout). */
  waitFutex(address: number, timeoutNs: number): void {
    this.currentThread.wait = {
      kind: 'futex',
      address,
      deadline: timeoutNs < 0 ? undefined : now() + timeoutNs / 1e6,
    };
  }

  /** Wakes up to `count` waiters of the futex word, oldest first; returns how many. */
  wakeFutex(address: number, count: number): number {
    let woken = 0;
    for (const thread of this.threads) {
      if (woken >= count) break;
      if (thread.wait.kind === 'futex' && thread.wait.address === address) {
        this.makeRunnable(thread, FutexResult.woken);
        woken++;
      }
    }
    return woken;
  }

  /** The running thread waits for the host (a blocking call); it runs again, re-making the call, once `ready` settles. */
  waitForHost(ready: Promise<unknown>, memo: unknown): void {
    const wait: Wait = { kind: 'host', ready, settled: false };
    const settle = () => {
      wait.settled = true;
    };
    ready.then(settle, settle);
    this.currentThread.wait = wait;
    this.currentThread.resumeMemo = memo;
  }

  /** True when the running thread has had its slice and another thread could run. */
  sliceOver(): boolean {
    if (this.threads.length === 1 || now() - this.sliceStart < timeSliceMs) return false;
    return this.threads.some((t) => t !== this.currentThread && this.runnable(t));
  }

  /**
   * The thread to run next (round robin, starting after the current one), or undefined when all
   * of them wait. Threads whose wait ended become runnable on the way.
   */
  pickNext(): Thread | undefined {
    const start = Math.max(0, this.threads.indexOf(this.currentThread));
    for (let i = 1; i <= this.threads.length; i++) {
      const thread = this.threads[(start + i) % this.threads.length]!;
      if (this.runnable(thread)) {
        if (thread !== this.currentThread) this.sliceStart = now();
        this.currentThread = thread;
        return thread;
      }
    }
    return undefined;
  }

  /**
   * What to await when no thread can run: the first host wait to settle or futex timeout to pass;
   * cancel() clears the timer when something else came first.
   */
  nextEvent(): { ready: Promise<unknown>; cancel(): void } | undefined {
    const events: Promise<unknown>[] = [];
    let deadline = Number.POSITIVE_INFINITY;
    for (const thread of this.threads) {
      const wait = thread.wait;
      if (wait.kind === 'host') events.push(wait.ready.catch(() => undefined));
      else if (wait.kind === 'futex' && wait.deadline !== undefined) deadline = Math.min(deadline, wait.deadline);
    }
    let timer: NodeJS.Timeout | undefined;
    if (Number.isFinite(deadline)) {
      events.push(new Promise((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - now())))));
    }
    return events.length > 0 ? { ready: Promise.race(events), cancel: () => clearTimeout(timer) } : undefined;
  }

  /** After a stop: threads waiting for the host re-make their calls when they run again. */
  forgetHostWaits(): void {
    for (const thread of this.threads) if (thread.wait.kind === 'host') thread.wait = { kind: 'runnable' };
  }

  takeResumeMemo(): unknown {
    const memo = this.currentThread.resumeMemo;
    this.currentThread.resumeMemo = undefined;
    return memo;
  }

  capture(): ThreadsState {
    const at = now();
    return {
      threads: this.threads.map((t) => ({
        id: t.id,
        start: t.start,
        buffer: t.buffer,
        stackPointer: t.stackPointer,
        locals: Buffer.from(t.locals).toString('base64'),
        started: t.started,
        wait:
          t.wait.kind === 'futex'
            ? {
                kind: 'futex',
                address: t.wait.address,
                ...(t.wait.deadline === undefined ? {} : { remainingNs: Math.max(0, (t.wait.deadline - at) * 1e6) }),
              }
            : { kind: 'runnable' },
        resumeMemo: t.resumeMemo,
      })),
      current: this.currentThread.id,
      nextId: this.nextId,
      locals: [...this.locals],
    };
  }

  restore(data: unknown): void {
    const parsed = v.safeParse(threadsStateSchema, data);
    if (!parsed.success) throw new SnapshotError(`snapshot threads: ${describeIssues(parsed.issues)}`);
    const state = parsed.output;
    const at = now();
    this.threads.length = 0;
    for (const t of state.threads) {
      const locals = new Uint8Array(Buffer.from(t.locals, 'base64'));
      const thread = new Thread(t.id, t.start, t.buffer, t.stackPointer, locals, t.started);
      thread.resumeMemo = t.resumeMemo;
      if (t.wait.kind === 'futex') {
        const remaining = t.wait.remainingNs;
        thread.wait = {
          kind: 'futex',
          address: t.wait.address,
          deadline: remaining === undefined ? undefined : at + remaining / 1e6,
        };
      }
      this.threads.push(thread);
    }
    const current = this.threads.find((t) => t.id === state.current);
    if (!current) throw new SnapshotError(`snapshot threads: no thread ${state.current} to resume`);
    this.currentThread = current;
    this.nextId = state.nextId;
    this.locals.splice(0, this.locals.length, ...state.locals);
  }

  private runnable(thread: Thread): boolean {
    const wait = thread.wait;
    if (wait.kind === 'runnable') return true;
    if (wait.kind === 'host' && wait.settled) {
      thread.wait = { kind: 'runnable' };
      return true;
    }
    if (wait.kind === 'futex' && wait.deadline !== undefined && wait.deadline <= now()) {
      this.makeRunnable(thread, FutexResult.timedOut);
      return true;
    }
    return false;
  }

  private makeRunnable(thread: Thread, futexResult: number): void {
    thread.wait = { kind: 'runnable' };
    thread.resumeMemo = { futex: futexResult };
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

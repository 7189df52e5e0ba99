/**
 * How a WASI call that must wait (stdin with no data, poll_oneoff with a timeout) waits.
 *
 * An instrumented module waits without blocking Node's event loop: the call asks the engine to
 * unwind the guest stack (Asyncify), the engine awaits `ready`, rewinds, and the guest makes the
 * *same* call again, which now finds its data. A plain module cannot unwind, so it waits in place.
 */
export interface Blocker {
  /** True when the guest can be suspended (instrumented module); false means wait synchronously. */
  readonly canSuspend: boolean;
  /**
   * The memo passed to suspend() by the previous attempt of the call now being re-run, or
   * undefined when this is a first attempt. Lets a re-run keep e.g. its original deadline.
   * Reading it consumes it.
   */
  takeResumeMemo(): unknown;
  /**
   * Suspend the guest until `ready` settles, then re-run the current call. The value returned
   * to the guest by the current attempt is ignored; return suspend()'s result from the import.
   * Only valid when canSuspend is true.
   */
  suspend(ready: Promise<unknown>, memo?: unknown): number;
}

/** Blocker for plain modules: nothing can suspend; callers wait synchronously. */
export const synchronousBlocker: Blocker = {
  canSuspend: false,
  takeResumeMemo: () => undefined,
  suspend: () => {
    throw new Error('synchronousBlocker cannot suspend');
  },
};

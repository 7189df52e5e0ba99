/** What the guest's in-memory streams share (pipes, in-container connections, gateway clients). */

/**
 * Reads a queue of chunks into the iovecs, oldest bytes first, and removes what it read unless
 * peeking. Returns the number of bytes read.
 */
export function readChunks(queue: Uint8Array[], iovs: Uint8Array[], peek: boolean): number {
  let total = 0;
  let chunk = 0;
  let within = 0;
  for (const iov of iovs) {
    let at = 0;
    while (at < iov.length && chunk < queue.length) {
      const head = queue[chunk]!;
      const n = Math.min(iov.length - at, head.length - within);
      iov.set(head.subarray(within, within + n), at);
      at += n;
      within += n;
      total += n;
      if (within === head.length) {
        chunk++;
        within = 0;
      }
    }
  }
  if (!peek) {
    queue.splice(0, chunk);
    if (within > 0) queue[0] = queue[0]!.subarray(within);
  }
  return total;
}

let arrivals = 0;

/**
 * A stamp of the order in which input reaches the guest's connections, across all of them: poll
 * reports ready connections in an order that keeps it (see inArrivalOrder in poll.ts).
 */
export const nextArrival = (): number => ++arrivals;

/** The next change of a stream as a promise, made when someone waits and settled by changed(). */
export class ChangeSignal {
  private change: { ready: Promise<void>; settle: () => void } | undefined;

  next(): Promise<void> {
    if (this.change === undefined) {
      let settle!: () => void;
      const ready = new Promise<void>((resolve) => (settle = resolve));
      this.change = { ready, settle };
    }
    return this.change.ready;
  }

  changed(): void {
    const change = this.change;
    this.change = undefined;
    change?.settle();
  }
}

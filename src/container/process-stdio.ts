import type { SharedPair } from './shared-pair.js';

/**
 * The output of a process of a container of several, when not piped into another process: the
 * guest writes side 0 of a pair of the broker, the owner reads side 1 and prints each line
 * prefixed with the process's name. Only whole lines are taken, so a line the guest has half
 * written stays in the pair, and a checkpoint carries it (no byte printed twice or lost).
 */
export class PrefixedOutput {
  /** Settles once the writer is gone and everything it wrote is printed (or on abandon()). */
  readonly done: Promise<void>;
  private abandoned = false;

  constructor(
    private readonly pair: SharedPair,
    private readonly prefix: string,
    private readonly out: NodeJS.WritableStream,
  ) {
    this.done = this.copy();
  }

  /** Stops reading, printing nothing more: what is left in the pair belongs to a checkpoint. */
  abandon(): void {
    this.abandoned = true;
  }

  private async copy(): Promise<void> {
    const decoder = new TextDecoder();
    for (;;) {
      if (this.abandoned) return;
      const ended = this.pair.finished(0);
      const readable = this.pair.readable(1);
      if (readable > 0) {
        const peeked = new Uint8Array(readable);
        this.pair.take(1, [peeked], true);
        // Whole lines, or everything once the writer ended or the pair is full (a line that long).
        const whole = ended || this.pair.space(0) === 0 ? readable : peeked.lastIndexOf(10) + 1;
        if (whole > 0) {
          this.pair.take(1, [new Uint8Array(whole)], false);
          const text = decoder.decode(peeked.subarray(0, whole));
          const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
          this.out.write(lines.map((line) => `${this.prefix}${line}\n`).join(''));
          continue;
        }
      }
      if (ended && readable === 0) {
        this.pair.release(1);
        return;
      }
      // Atomics.waitAsync keeps no event loop alive: a timer does, while output is still to come.
      const keepAlive = setInterval(() => undefined, 60_000);
      await this.pair.next();
      clearInterval(keepAlive);
    }
  }
}

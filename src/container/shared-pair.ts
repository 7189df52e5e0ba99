import type { Address, Family, PairState, StreamPair } from '../wasi/loopback.js';
import { STREAM_CAPACITY } from '../wasi/loopback.js';

/**
 * A stream pair whose bytes live in a SharedArrayBuffer, so that its two sides may be held by
 * two processes of a container (two guest threads) and the container's owner can capture the
 * bytes in flight once every process is stopped. Each direction is a ring written by one side
 * and read by the other (single producer, single consumer); a change counter wakes waiters on
 * any thread (Atomics.waitAsync).
 */

/** Int32 slots of the header. */
const CHANGE = 0;
const FIN = 1; // + side
const OPEN = 3; // + side
const WRITTEN = 5; // + direction: bytes ever written (wrapping)
const READ = 7; // + direction: bytes ever read (wrapping)
const HEADER_BYTES = 64;
const MASK = STREAM_CAPACITY - 1;

/** The shared memory of one pair: what the owner keeps and hands to the threads holding its sides. */
export function newPairBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER_BYTES + 2 * STREAM_CAPACITY);
}

export class SharedPair implements StreamPair {
  private readonly header: Int32Array;
  private readonly rings: [Uint8Array, Uint8Array];
  /** The change counter as first seen since the last wait: a change after it ends the next wait. */
  private observed: number | undefined;

  /**
   * `local`: the sides held on this thread. A side held elsewhere is read with care: its end of
   * the stream shows only once its bytes are all read, since they may land between two checks.
   */
  constructor(
    readonly id: number,
    readonly family: Family,
    readonly addresses: [Address, Address],
    readonly buffer: SharedArrayBuffer,
    private readonly local: Set<0 | 1>,
  ) {
    this.header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.rings = [
      new Uint8Array(buffer, HEADER_BYTES, STREAM_CAPACITY),
      new Uint8Array(buffer, HEADER_BYTES + STREAM_CAPACITY, STREAM_CAPACITY),
    ];
  }

  /** A fresh pair: both sides open. */
  static create(id: number, family: Family, addresses: [Address, Address], local: Set<0 | 1>): SharedPair {
    const pair = new SharedPair(id, family, addresses, newPairBuffer(), local);
    Atomics.store(pair.header, OPEN, 1);
    Atomics.store(pair.header, OPEN + 1, 1);
    return pair;
  }

  /** A captured pair, its bytes back in the rings. */
  static restore(state: PairState): SharedPair {
    const pair = new SharedPair(state.id, state.family, state.addresses, newPairBuffer(), new Set());
    for (const side of [0, 1] as const) {
      const bytes = Buffer.from(state.data[side], 'base64');
      pair.rings[side].set(bytes);
      Atomics.store(pair.header, WRITTEN + side, bytes.length);
      Atomics.store(pair.header, FIN + side, state.fin[side] ? 1 : 0);
      Atomics.store(pair.header, OPEN + side, state.open[side] ? 1 : 0);
    }
    return pair;
  }

  /** This thread holds `side` no more (it went to another process). */
  handOver(side: 0 | 1): void {
    this.local.delete(side);
  }

  private load(slot: number): number {
    this.observed ??= Atomics.load(this.header, CHANGE);
    return Atomics.load(this.header, slot);
  }

  /** Bytes in direction `direction` not read yet. */
  private pending(direction: 0 | 1): number {
    return (this.load(WRITTEN + direction) - this.load(READ + direction)) | 0;
  }

  get fin(): readonly [boolean, boolean] {
    return [this.ended(0, FIN), this.ended(1, FIN)];
  }

  get open(): readonly [boolean, boolean] {
    return [!this.ended(0, OPEN), !this.ended(1, OPEN)] as const;
  }

  /** Side `side` finished (FIN) or closed (OPEN); a remote side's end waits behind its bytes. */
  private ended(side: 0 | 1, slot: typeof FIN | typeof OPEN): boolean {
    const flag = this.load(slot + side);
    const ended = slot === FIN ? flag === 1 : flag === 0;
    if (!ended || this.local.has(side)) return ended;
    return this.pending(side) === 0;
  }

  /**
   * Side `side` finished, whether or not its bytes are all read (`fin` waits behind them): read
   * before readable(), it means that every byte the side wrote is counted there.
   */
  finished(side: 0 | 1): boolean {
    return this.load(FIN + side) === 1;
  }

  readable(side: 0 | 1): number {
    return this.pending(side === 0 ? 1 : 0);
  }

  /** A peer that closed takes (and drops) anything: the writer learns it once it read the rest. */
  space(side: 0 | 1): number {
    if (this.load(OPEN + (1 - side)) === 0) return STREAM_CAPACITY;
    return STREAM_CAPACITY - this.pending(side);
  }

  take(side: 0 | 1, iovs: Uint8Array[], peek: boolean): number {
    const direction = side === 0 ? 1 : 0;
    const ring = this.rings[direction];
    let at = this.load(READ + direction);
    let left = this.pending(direction);
    let total = 0;
    for (const iov of iovs) {
      let filled = 0;
      while (filled < iov.length && left > 0) {
        const start = at & MASK;
        const n = Math.min(iov.length - filled, left, STREAM_CAPACITY - start);
        iov.set(ring.subarray(start, start + n), filled);
        [filled, at, left] = [filled + n, (at + n) | 0, left - n];
      }
      total += filled;
      if (left === 0) break;
    }
    if (!peek && total > 0) {
      Atomics.store(this.header, READ + direction, at);
      this.changed();
    }
    return total;
  }

  put(side: 0 | 1, iovs: Uint8Array[], max: number): number {
    const bytes = Buffer.concat(iovs.map((iov) => Buffer.from(iov))).subarray(0, max);
    if (bytes.length === 0) return 0;
    if (this.load(OPEN + (1 - side)) === 0) return bytes.length;
    const ring = this.rings[side];
    let at = this.load(WRITTEN + side);
    for (let done = 0; done < bytes.length; ) {
      const start = at & MASK;
      const n = Math.min(bytes.length - done, STREAM_CAPACITY - start);
      ring.set(bytes.subarray(done, done + n), start);
      [done, at] = [done + n, (at + n) | 0];
    }
    Atomics.store(this.header, WRITTEN + side, at);
    this.changed();
    return bytes.length;
  }

  finish(side: 0 | 1): void {
    if (Atomics.exchange(this.header, FIN + side, 1) === 0) this.changed();
  }

  release(side: 0 | 1): void {
    Atomics.store(this.header, OPEN + side, 0);
    Atomics.store(this.header, FIN + side, 1);
    // What was sent to the closed side is dropped (only that side reads this direction).
    const toClosed = side === 0 ? 1 : 0;
    Atomics.store(this.header, READ + toClosed, Atomics.load(this.header, WRITTEN + toClosed));
    this.changed();
  }

  /** Both sides are closed: nobody holds the pair any more. */
  get closed(): boolean {
    return Atomics.load(this.header, OPEN) === 0 && Atomics.load(this.header, OPEN + 1) === 0;
  }

  next(): Promise<void> {
    const seen = this.observed ?? Atomics.load(this.header, CHANGE);
    this.observed = undefined;
    const wait = Atomics.waitAsync(this.header, CHANGE, seen);
    return wait.async ? wait.value.then(() => undefined) : Promise.resolve();
  }

  private changed(): void {
    Atomics.add(this.header, CHANGE, 1);
    Atomics.notify(this.header, CHANGE);
  }

  /** The pair as plain data, as QueuePair captures it; taken while no side's guest runs. */
  capture(): PairState {
    const data = ([0, 1] as const).map((direction) => {
      const out = new Uint8Array(this.pending(direction));
      const read = Atomics.load(this.header, READ + direction);
      for (let i = 0; i < out.length; i++) out[i] = this.rings[direction][(read + i) & MASK]!;
      return Buffer.from(out).toString('base64');
    }) as [string, string];
    const flag = (slot: number) => Atomics.load(this.header, slot) === 1;
    return {
      id: this.id,
      family: this.family,
      addresses: [{ ...this.addresses[0] }, { ...this.addresses[1] }],
      data,
      fin: [flag(FIN), flag(FIN + 1)],
      open: [flag(OPEN), flag(OPEN + 1)],
    };
  }
}

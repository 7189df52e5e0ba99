import { Clockid, Errno } from './constants.js';
import { WasiError } from './errors.js';

/** Where the host reads time, in nanoseconds. Replaceable so tests can control time. */
export interface ClockSource {
  /** Wall-clock time since the Unix epoch. */
  realtime(): bigint;
  /** A monotonic clock with an arbitrary origin. */
  monotonic(): bigint;
  /** CPU time used by this process. */
  cputime(): bigint;
}

export const systemClock: ClockSource = {
  // Node has no finer wall clock; deriving one from hrtime would drift from NTP corrections.
  realtime: () => BigInt(Date.now()) * 1_000_000n,
  monotonic: () => process.hrtime.bigint(),
  cputime: () => {
    const usage = process.cpuUsage();
    return BigInt(usage.user + usage.system) * 1000n;
  },
};

/** Guest-visible values of the clocks that must not go backwards across a migration. */
export interface ClockState {
  monotonic: string;
  cputime: string;
}

/**
 * The guest's clocks. Monotonic and CPU time continue from their captured values on the new
 * host (an offset is added to the source), so they never go backwards; the time the guest was
 * stopped for migration does not count. Realtime is the host's wall clock.
 */
export class Clocks {
  private readonly monotonicOffset: bigint;
  private readonly cputimeOffset: bigint;

  constructor(
    private readonly source: ClockSource,
    resumeFrom?: ClockState,
  ) {
    this.monotonicOffset = resumeFrom ? BigInt(resumeFrom.monotonic) - source.monotonic() : 0n;
    this.cputimeOffset = resumeFrom ? BigInt(resumeFrom.cputime) - source.cputime() : 0n;
  }

  now(id: number): bigint {
    switch (id) {
      case Clockid.REALTIME:
        return this.source.realtime();
      case Clockid.MONOTONIC:
        return this.source.monotonic() + this.monotonicOffset;
      case Clockid.PROCESS_CPUTIME_ID:
      case Clockid.THREAD_CPUTIME_ID:
        return this.source.cputime() + this.cputimeOffset;
      default:
        throw new WasiError(Errno.INVAL);
    }
  }

  resolution(id: number): bigint {
    switch (id) {
      case Clockid.MONOTONIC:
        return 1n;
      case Clockid.REALTIME:
        return 1_000_000n;
      case Clockid.PROCESS_CPUTIME_ID:
      case Clockid.THREAD_CPUTIME_ID:
        return 1000n;
      default:
        throw new WasiError(Errno.INVAL);
    }
  }

  capture(): ClockState {
    return {
      monotonic: this.now(Clockid.MONOTONIC).toString(),
      cputime: this.now(Clockid.PROCESS_CPUTIME_ID).toString(),
    };
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Block the thread (no event loop) for `ms` milliseconds; for plain modules that cannot suspend. */
export function sleepSync(ms: number): void {
  if (ms > 0) Atomics.wait(sleepCell, 0, 0, ms);
}

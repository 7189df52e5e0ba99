import { Errno, Fdflags, Filetype } from '../constants.js';
import { WasiError } from '../errors.js';
import type { Loopback, StreamPair } from '../loopback.js';
import type { Filestat } from '../stat.js';
import { type CommonState, Descriptor, Wait } from './descriptor.js';
import { PIPE_BUF, type PipeEnd, pipeFilestat, RIGHTS_PIPE_READ, RIGHTS_PIPE_WRITE } from './pipe.js';

/**
 * One end of a pipe between two processes of a container (one's stdout into another's stdin):
 * its bytes are a stream pair of the container's network (side 0 the write end, side 1 the read
 * end), so they are in the container's capture with the other pairs, and a writer waiting on a
 * full pipe waits by suspending, so it can still be stopped. It behaves as a pipe end inside one
 * guest does (pipe.ts): EOF once the writer is gone, EPIPE once the reader is.
 */

export interface StreamPipeState extends CommonState {
  kind: 'streamPipe';
  end: PipeEnd;
  /** The stream pair's id in the container's network. */
  pair: number;
}

const sideOf = (end: PipeEnd): 0 | 1 => (end === 'write' ? 0 : 1);

/** The state of a fresh end of pair `pair`, as a host's initial state puts it at fd 0 or 1. */
export function streamPipeState(end: PipeEnd, pair: number): StreamPipeState {
  return {
    kind: 'streamPipe',
    end,
    pair,
    rightsBase: (end === 'read' ? RIGHTS_PIPE_READ : RIGHTS_PIPE_WRITE).toString(),
    rightsInheriting: '0',
    fdflags: 0,
  };
}

export class StreamPipeDescriptor extends Descriptor {
  readonly filetype = Filetype.SOCKET_STREAM;
  private readonly side: 0 | 1;
  private closed = false;

  private constructor(
    private readonly loopback: Loopback,
    private readonly pair: StreamPair,
    readonly end: PipeEnd,
    private readonly canSuspend: boolean,
    state: CommonState,
  ) {
    super(BigInt(state.rightsBase), BigInt(state.rightsInheriting), state.fdflags);
    this.side = sideOf(end);
  }

  /** The end described by `state`, over the pair of that id that `loopback` holds. */
  static restore(state: StreamPipeState, loopback: Loopback, canSuspend: boolean): StreamPipeDescriptor {
    return new StreamPipeDescriptor(loopback, loopback.restoredPair(state.pair), state.end, canSuspend, state);
  }

  private wouldBlock(): Wait {
    if (this.fdflags & Fdflags.NONBLOCK) throw new WasiError(Errno.AGAIN);
    if (!this.canSuspend) throw new WasiError(Errno.DEADLK);
    return new Wait(this.pair.next());
  }

  override read(iovs: Uint8Array[]): number | Wait {
    if (this.end !== 'read') throw new WasiError(Errno.BADF);
    if (iovs.every((iov) => iov.length === 0)) return 0;
    if (this.pair.readable(1) > 0) return this.pair.take(1, iovs, false);
    if (this.pair.fin[0]) return 0;
    return this.wouldBlock();
  }

  /** What fits; a write of up to PIPE_BUF bytes goes in whole or waits. */
  override write(iovs: Uint8Array[]): number | Wait {
    if (this.end !== 'write') throw new WasiError(Errno.BADF);
    if (!this.pair.open[1]) throw new WasiError(Errno.PIPE);
    const total = iovs.reduce((n, iov) => n + iov.length, 0);
    if (total === 0) return 0;
    const space = this.pair.space(0);
    if (space === 0 || (total <= PIPE_BUF && space < total)) return this.wouldBlock();
    return this.pair.put(0, iovs, Math.min(total, space));
  }

  override poll(kind: 'read' | 'write'): bigint | Wait {
    if (kind === 'read' && this.end === 'read') {
      const readable = this.pair.readable(1);
      if (readable > 0 || this.pair.fin[0]) return BigInt(readable);
    } else if (kind === 'write' && this.end === 'write') {
      if (!this.pair.open[1]) return 0n;
      const space = this.pair.space(0);
      if (space >= PIPE_BUF) return BigInt(space);
    }
    return new Wait(this.pair.next());
  }

  override filestat(): Filestat {
    return pipeFilestat(this.pair.id, this.filetype);
  }

  override close(): void {
    if (this.closed) return;
    this.closed = true;
    this.loopback.release(this.pair, this.side);
  }

  override capture(): StreamPipeState {
    return { kind: 'streamPipe', ...this.captureCommon(), end: this.end, pair: this.pair.id };
  }
}

import { Errno, Fdflags, Filetype, Rights } from '../constants.js';
import { WasiError, WasiSetupError } from '../errors.js';
import type { Filestat } from '../stat.js';
import { ChangeSignal } from '../streams.js';
import { type CommonState, Descriptor, Wait } from './descriptor.js';

export type PipeEnd = 'read' | 'write';

export interface PipeState extends CommonState {
  kind: 'pipe';
  end: PipeEnd;
  /** Identifies the pipe within one host state: the two ends of a pipe carry the same id. */
  pipe: number;
  /** Bytes written and not yet read, base64 (the same on both ends). */
  buffered: string;
}

/** What a pipe holds before writes block, as on Linux. */
export const PIPE_CAPACITY = 64 * 1024;
/** Writes of at most this many bytes are never split (POSIX; wasi-libc's <limits.h> says 4096). */
export const PIPE_BUF = 4096;

const COMMON_RIGHTS = Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET | Rights.POLL_FD_READWRITE;
export const RIGHTS_PIPE_READ = Rights.FD_READ | COMMON_RIGHTS;
export const RIGHTS_PIPE_WRITE = Rights.FD_WRITE | COMMON_RIGHTS;

/** What fstat says of a pipe end: no size, no times; the pipe's id makes its inode. */
export function pipeFilestat(id: number, filetype: number): Filestat {
  return { dev: 0n, ino: BigInt(id + 1), filetype, nlink: 1n, size: 0n, atim: 0n, mtim: 0n, ctim: 0n };
}

/**
 * The object both ends share: a bounded byte buffer and how many open descriptions each end has
 * (dup'ed fds share one description, so they count once; the host counts fds).
 */
export class Pipe {
  private data: Buffer;
  private start = 0;
  private end: number;
  readers = 0;
  writers = 0;
  private readonly signal = new ChangeSignal();

  constructor(
    readonly id: number,
    buffered: Uint8Array = new Uint8Array(0),
  ) {
    if (buffered.length > PIPE_CAPACITY) throw new WasiSetupError(`pipe ${id} holds more than ${PIPE_CAPACITY} bytes`);
    this.data = Buffer.alloc(PIPE_CAPACITY);
    this.data.set(buffered);
    this.end = buffered.length;
  }

  get length(): number {
    return this.end - this.start;
  }

  get space(): number {
    return PIPE_CAPACITY - this.length;
  }

  get buffered(): Buffer {
    return this.data.subarray(this.start, this.end);
  }

  /** Copies up to what the iovecs hold out of the buffer. */
  take(iovs: Uint8Array[]): number {
    let n = 0;
    for (const iov of iovs) {
      const k = Math.min(iov.length, this.length);
      iov.set(this.data.subarray(this.start, this.start + k));
      this.start += k;
      n += k;
      if (this.length === 0) break;
    }
    if (this.length === 0) this.start = this.end = 0;
    if (n > 0) this.changed();
    return n;
  }

  /** Appends up to `max` bytes from the iovecs. */
  put(iovs: Uint8Array[], max: number): number {
    if (this.end + max > PIPE_CAPACITY) {
      this.data.copyWithin(0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
    let n = 0;
    for (const iov of iovs) {
      const k = Math.min(iov.length, max - n);
      this.data.set(iov.subarray(0, k), this.end);
      this.end += k;
      n += k;
      if (n === max) break;
    }
    if (n > 0) this.changed();
    return n;
  }

  /**
   * Settles at the next change of the pipe: bytes written or read, an end closed. Only the guest
   * itself changes its pipes, so a guest suspended on one wakes when a test (or, one day, another
   * thread of the guest) acts on the other end, or when a poll's timeout passes.
   */
  next(): Promise<void> {
    return this.signal.next();
  }

  changed(): void {
    this.signal.changed();
  }
}

/**
 * One end of a pipe inside the guest (fd_pipe in the roam_posix module). WASI has no FIFO file
 * type; the ends report SOCKET_STREAM, and the POSIX layer's fstat asks fd_is_pipe to report
 * S_IFIFO. The host's sock_* calls still answer ENOTSOCK, as on a Linux pipe.
 *
 * A call that cannot go on either fails with EAGAIN (the fd is non-blocking), or waits for the
 * pipe to change (a Wait: the guest is suspended), or, when the guest cannot be suspended (a
 * plain module), fails with EDEADLK: nothing but the guest itself could ever change the pipe,
 * so waiting in place would hang the thread for good.
 */
export class PipeDescriptor extends Descriptor {
  readonly filetype = Filetype.SOCKET_STREAM;
  private closed = false;

  constructor(
    readonly pipe: Pipe,
    readonly end: PipeEnd,
    private readonly canSuspend: boolean,
    rightsBase: bigint = end === 'read' ? RIGHTS_PIPE_READ : RIGHTS_PIPE_WRITE,
    rightsInheriting = 0n,
    fdflags = 0,
  ) {
    super(rightsBase, rightsInheriting, fdflags);
    if (end === 'read') pipe.readers++;
    else pipe.writers++;
  }

  /** A pipe's two ends, linked. */
  static create(id: number, canSuspend: boolean): [PipeDescriptor, PipeDescriptor] {
    const pipe = new Pipe(id);
    return [new PipeDescriptor(pipe, 'read', canSuspend), new PipeDescriptor(pipe, 'write', canSuspend)];
  }

  /** Rebuild an end; `pipes` links it to the other end restored from the same state. */
  static restore(state: PipeState, pipes: Map<number, Pipe>, canSuspend: boolean): PipeDescriptor {
    let pipe = pipes.get(state.pipe);
    if (pipe === undefined) {
      pipe = new Pipe(state.pipe, Buffer.from(state.buffered, 'base64'));
      pipes.set(state.pipe, pipe);
    }
    return new PipeDescriptor(
      pipe,
      state.end,
      canSuspend,
      BigInt(state.rightsBase),
      BigInt(state.rightsInheriting),
      state.fdflags,
    );
  }

  private wouldBlock(): Wait {
    if (this.fdflags & Fdflags.NONBLOCK) throw new WasiError(Errno.AGAIN);
    if (!this.canSuspend) throw new WasiError(Errno.DEADLK);
    return new Wait(this.pipe.next());
  }

  override read(iovs: Uint8Array[]): number | Wait {
    if (this.end !== 'read') throw new WasiError(Errno.BADF);
    if (iovs.every((iov) => iov.length === 0)) return 0;
    if (this.pipe.length > 0) return this.pipe.take(iovs);
    if (this.pipe.writers === 0) return 0;
    return this.wouldBlock();
  }

  /** What fits; a write of up to PIPE_BUF bytes goes in whole or waits. */
  override write(iovs: Uint8Array[]): number | Wait {
    if (this.end !== 'write') throw new WasiError(Errno.BADF);
    if (this.pipe.readers === 0) throw new WasiError(Errno.PIPE);
    const total = iovs.reduce((n, iov) => n + iov.length, 0);
    if (total === 0) return 0;
    const space = this.pipe.space;
    if (space === 0 || (total <= PIPE_BUF && space < total)) return this.wouldBlock();
    return this.pipe.put(iovs, Math.min(total, space));
  }

  /**
   * Readable: bytes are there, or end of file. Writable: a PIPE_BUF write would not wait, or no
   * reader is left (the write then fails at once with EPIPE). An end never becomes ready for the
   * other direction.
   */
  override poll(kind: 'read' | 'write'): bigint | Wait {
    const pipe = this.pipe;
    if (kind === 'read' && this.end === 'read') {
      if (pipe.length > 0 || pipe.writers === 0) return BigInt(pipe.length);
    } else if (kind === 'write' && this.end === 'write') {
      if (pipe.readers === 0) return 0n;
      if (pipe.space >= PIPE_BUF) return BigInt(pipe.space);
    }
    return new Wait(pipe.next());
  }

  override filestat(): Filestat {
    return pipeFilestat(this.pipe.id, this.filetype);
  }

  override close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.end === 'read') this.pipe.readers--;
    else this.pipe.writers--;
    this.pipe.changed();
  }

  override capture(): PipeState {
    return {
      kind: 'pipe',
      ...this.captureCommon(),
      end: this.end,
      pipe: this.pipe.id,
      buffered: this.pipe.buffered.toString('base64'),
    };
  }
}

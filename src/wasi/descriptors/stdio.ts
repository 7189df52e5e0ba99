import { fdatasyncSync, fstatSync, fsyncSync, readvSync, type Stats, writevSync } from 'node:fs';
import { type OnReadOpts, Socket, type SocketConstructorOpts } from 'node:net';
import { isatty, ReadStream } from 'node:tty';
import type { Blocker } from '../../engine/blocking.js';
import { sleepSync } from '../clock.js';
import { Errno, Fdflags, Filetype } from '../constants.js';
import { nodeCode, WasiError } from '../errors.js';
import { type Filestat, filestatOf, filetypeOf } from '../stat.js';
import { type CommonState, Descriptor, Wait } from './descriptor.js';

export type StdioStream = 'stdin' | 'stdout' | 'stderr';

export interface StdioState extends CommonState {
  kind: 'stdio';
  /** Which of the host's stdio streams this fd is bound to on restore. */
  stream: StdioStream;
  /** Input read from the host but not yet by the guest, base64. */
  buffered: string;
  /** The host reported end of input and the guest has not been told yet. */
  eof: boolean;
}

const CHUNK = 64 * 1024;
/** How long to back off when a host fd that someone made non-blocking has nothing. */
const RETRY_MS = 10;

/** Terminals, pipes and sockets can block a read indefinitely; files and /dev/null cannot. */
function mayBlock(fd: number, st: Stats | undefined): boolean {
  return st !== undefined && (isatty(fd) || st.isFIFO() || st.isSocket());
}

/**
 * One of the host process's stdio fds. A read that could block either blocks the thread
 * (plain modules) or, when the guest can be suspended, is served from `buffered`, which a
 * libuv stream over the host fd fills; when it is empty the call returns a Wait and is re-run
 * once data arrives. The stream is paused and unref'd whenever no guest call waits on it, so
 * it neither reads ahead nor keeps the process alive after the guest has exited.
 */
export class StdioDescriptor extends Descriptor {
  readonly filetype: number;
  private readonly asynchronous: boolean;
  private buffered: Buffer;
  private eof: boolean;
  /** The host stream ended: after the one EOF in `eof`, reads keep returning 0. */
  private ended = false;
  /** The host stream failed; the next guest read reports it. */
  private error: unknown;
  private input: Socket | undefined;
  private pending: { ready: Promise<void>; settle: () => void } | undefined;

  constructor(
    readonly stream: StdioStream,
    private readonly hostFd: number,
    blocker: Blocker,
    rightsBase: bigint,
    rightsInheriting: bigint,
    fdflags: number,
    buffered = Buffer.alloc(0),
    eof = false,
  ) {
    super(rightsBase, rightsInheriting, fdflags);
    this.buffered = buffered;
    this.eof = eof;
    let st: Stats | undefined;
    try {
      st = fstatSync(hostFd);
    } catch {
      // A closed host fd: the guest's calls fail with the host's EBADF.
    }
    this.filetype = st ? filetypeOf(st) : Filetype.UNKNOWN;
    this.asynchronous = blocker.canSuspend && mayBlock(hostFd, st);
  }

  static restore(state: StdioState, hostFd: number, blocker: Blocker): StdioDescriptor {
    return new StdioDescriptor(
      state.stream,
      hostFd,
      blocker,
      BigInt(state.rightsBase),
      BigInt(state.rightsInheriting),
      state.fdflags,
      Buffer.from(state.buffered, 'base64'),
      state.eof,
    );
  }

  override read(iovs: Uint8Array[]): number | Wait {
    if (this.buffered.length > 0) return this.takeBuffered(iovs);
    if (this.eof) {
      this.eof = false;
      return 0;
    }
    if (this.error !== undefined) {
      const error = this.error;
      this.error = undefined;
      throw error;
    }
    if (!this.asynchronous) return this.retryAgain(() => readvSync(this.hostFd, iovs));
    if (this.ended) return 0;
    const ready = this.fill();
    if (this.fdflags & Fdflags.NONBLOCK) throw new WasiError(Errno.AGAIN);
    return new Wait(ready, { cancel: () => this.release() });
  }

  private takeBuffered(iovs: Uint8Array[]): number {
    let n = 0;
    for (const iov of iovs) {
      const take = Math.min(iov.length, this.buffered.length - n);
      iov.set(this.buffered.subarray(n, n + take));
      n += take;
      if (n === this.buffered.length) break;
    }
    this.buffered = this.buffered.subarray(n);
    return n;
  }

  /**
   * The libuv stream over the host fd, made on first need (never for plain modules). With
   * `onread`, chunks come straight to us and pause() stops reading the fd itself, so nothing
   * is read ahead into a stream buffer that capture() could not see.
   */
  private openInput(): Socket {
    if (this.input === undefined) {
      const options: SocketConstructorOpts & { onread: OnReadOpts } = {
        fd: this.hostFd,
        readable: true,
        writable: false,
        onread: {
          buffer: Buffer.alloc(CHUNK),
          callback: (n, chunk) => {
            this.buffered = Buffer.concat([this.buffered, chunk.subarray(0, n)]);
            this.wake();
            return false;
          },
        },
      };
      const input = isatty(this.hostFd) ? new ReadStream(this.hostFd, options) : new Socket(options);
      input.pause();
      input.on('end', () => {
        this.eof = true;
        this.ended = true;
        this.wake();
      });
      input.on('error', (e) => {
        this.error = e;
        this.wake();
      });
      this.input = input;
    }
    return this.input;
  }

  /** Let the stream flow until something arrives; the promise settles then. */
  private fill(): Promise<void> {
    if (this.pending === undefined) {
      let settle!: () => void;
      const ready = new Promise<void>((resolve) => (settle = resolve));
      this.pending = { ready, settle };
    }
    const input = this.openInput();
    input.ref();
    input.resume();
    return this.pending.ready;
  }

  /** Stop reading the host fd and stop keeping the process alive for it. */
  private release(): void {
    this.input?.pause();
    this.input?.unref();
  }

  private wake(): void {
    this.release();
    const pending = this.pending;
    this.pending = undefined;
    pending?.settle();
  }

  /** Run a host transfer, sleeping through EAGAIN unless the guest asked for non-blocking. */
  private retryAgain(transfer: () => number): number {
    for (;;) {
      try {
        return transfer();
      } catch (e) {
        if (nodeCode(e) !== 'EAGAIN' || this.fdflags & Fdflags.NONBLOCK) throw e;
        sleepSync(RETRY_MS);
      }
    }
  }

  override write(iovs: Uint8Array[]): number {
    return this.retryAgain(() => writevSync(this.hostFd, iovs));
  }

  override filestat(): Filestat {
    return filestatOf(fstatSync(this.hostFd, { bigint: true }));
  }

  override sync(): void {
    fsyncSync(this.hostFd);
  }

  override datasync(): void {
    fdatasyncSync(this.hostFd);
  }

  /**
   * Only a suspendable guest can learn whether input is there: a plain module has no way to
   * wait on the host fd without blocking in read, so its stdio is reported ready.
   */
  override poll(kind: 'read' | 'write'): bigint | Wait {
    if (kind === 'write') return 0n;
    const ready = this.buffered.length > 0 || this.eof || this.ended || this.error !== undefined;
    if (this.asynchronous && !ready) return new Wait(this.fill(), { cancel: () => this.release() });
    return BigInt(this.buffered.length);
  }

  /** The host's stdio fds belong to the whole process (the engine logs through them): kept open. */
  override close(): void {
    this.release();
  }

  /**
   * The guest is stopped when captured, so reading stops too: input that has not reached
   * `buffered` stays in the host fd. A re-run read after a resume starts reading again.
   */
  override capture(): StdioState {
    this.release();
    return {
      kind: 'stdio',
      ...this.captureCommon(),
      stream: this.stream,
      buffered: this.buffered.toString('base64'),
      eof: this.eof,
    };
  }
}

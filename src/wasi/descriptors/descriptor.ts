import { Errno } from '../constants.js';
import { WasiError } from '../errors.js';
import type { Filestat } from '../stat.js';
import type { DirectoryState } from './directory.js';
import type { FileState } from './file.js';
import type { PipeState } from './pipe.js';
import type { InetSocketState, ListenerState, SocketState, StreamState } from './socket.js';
import type { StdioState } from './stdio.js';
import type { StreamPipeState } from './stream-pipe.js';

/**
 * Returned instead of a result when the operation cannot complete yet and the guest can be
 * suspended: the host hands `ready` and `memo` to the Blocker, and the call is re-run once
 * `ready` settles. `cancel` tells the descriptor nobody waits any more (poll_oneoff woke up for
 * another reason), so it can stop host activity that would keep the process alive.
 */
export class Wait {
  constructor(
    readonly ready: Promise<unknown>,
    readonly options: { cancel?: () => void; memo?: unknown } = {},
  ) {}

  cancel(): void {
    this.options.cancel?.();
  }
}

/** Fields every descriptor kind captures. u64 rights travel as decimal strings. */
export interface CommonState {
  rightsBase: string;
  rightsInheriting: string;
  fdflags: number;
}

export type DescriptorState =
  | StdioState
  | FileState
  | DirectoryState
  | ListenerState
  | SocketState
  | PipeState
  | InetSocketState
  | StreamState
  | StreamPipeState;

/**
 * One open guest fd. Each kind overrides what it supports; the defaults answer the way POSIX
 * does for an fd that cannot do the operation. Failures are thrown (WasiError or Node system
 * errors) and turned into errno values by the host. Rights are checked by the host before
 * dispatch, so methods here only deal with the object itself.
 */
export abstract class Descriptor {
  abstract readonly filetype: number;

  constructor(
    public rightsBase: bigint,
    public rightsInheriting: bigint,
    public fdflags: number,
  ) {}

  read(_iovs: Uint8Array[]): number | Wait {
    throw new WasiError(Errno.BADF);
  }
  /** A Wait only from kinds whose writes can block (pipes); fd_write is a suspending import. */
  write(_iovs: Uint8Array[]): number | Wait {
    throw new WasiError(Errno.BADF);
  }
  pread(_iovs: Uint8Array[], _offset: bigint): number {
    throw new WasiError(Errno.SPIPE);
  }
  pwrite(_iovs: Uint8Array[], _offset: bigint): number {
    throw new WasiError(Errno.SPIPE);
  }
  seek(_offset: bigint, _whence: number): bigint {
    throw new WasiError(Errno.SPIPE);
  }
  tell(): bigint {
    throw new WasiError(Errno.SPIPE);
  }
  /** Flags are validated by the host; kinds consult `fdflags` when they act (append, sync, nonblock). */
  setFlags(flags: number): void {
    this.fdflags = flags;
  }
  abstract filestat(): Filestat;
  setSize(_size: bigint): void {
    throw new WasiError(Errno.INVAL);
  }
  /** Times in seconds, as Node's utimes family takes them. */
  setTimes(_atime: number, _mtime: number): void {
    throw new WasiError(Errno.BADF);
  }
  advise(): void {
    throw new WasiError(Errno.BADF);
  }
  allocate(_offset: bigint, _len: bigint): void {
    throw new WasiError(Errno.BADF);
  }
  /** Directory entries serialized as dirents from `cookie`, at most `bufLen` bytes. */
  readdir(_cookie: bigint, _bufLen: number): Uint8Array {
    throw new WasiError(Errno.NOTDIR);
  }
  sync(): void {
    throw new WasiError(Errno.INVAL);
  }
  datasync(): void {
    throw new WasiError(Errno.INVAL);
  }
  /**
   * For poll_oneoff: the bytes available for `kind` when ready (regular files always are),
   * or a Wait when not.
   */
  poll(_kind: 'read' | 'write'): bigint | Wait {
    return 0n;
  }
  /**
   * For poll_oneoff, when ready to read: the nextArrival() stamp of its oldest unread input, where
   * the order of input across connections matters (undefined: it does not).
   */
  readySince(): number | undefined {
    return undefined;
  }
  /** The description's last fd was closed (the host counts the fds that share it). */
  close(): void {}
  /** What fd_prestat_get reports: set for the fds a guest finds at start-up, else EBADF. */
  prestat(): { type: number; name: string } | undefined {
    return undefined;
  }
  /** sock_accept: a new connection's descriptor (with `fdflags`), or a Wait. */
  accept(_fdflags: number): Descriptor | Wait {
    throw new WasiError(Errno.NOTSOCK);
  }
  /** sock_recv: [bytes read or a Wait, roflags]; `peek` leaves the bytes in place. */
  recv(_iovs: Uint8Array[], _peek: number): [number | Wait, number] {
    throw new WasiError(Errno.NOTSOCK);
  }
  send(iovs: Uint8Array[]): number | Wait {
    if (this.filetype !== 6) throw new WasiError(Errno.NOTSOCK);
    return this.write(iovs);
  }
  shutdown(_how: number): void {
    throw new WasiError(Errno.NOTSOCK);
  }

  abstract capture(): DescriptorState;

  protected captureCommon(): CommonState {
    return {
      rightsBase: this.rightsBase.toString(),
      rightsInheriting: this.rightsInheriting.toString(),
      fdflags: this.fdflags,
    };
  }
}

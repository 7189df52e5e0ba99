import { Errno, Fdflags, Filetype, Preopentype, Rights } from '../constants.js';
import { WasiError, WasiSetupError } from '../errors.js';
import type { Connection, Network } from '../network.js';
import { maxUnackedBytes } from '../network.js';
import type { Filestat } from '../stat.js';
import { type CommonState, Descriptor, type Wait } from './descriptor.js';

export type ListenerState = CommonState & { kind: 'listener'; port: number };
export type SocketState = CommonState & { kind: 'socket'; conn: number };

export const RIGHTS_LISTENER =
  Rights.SOCK_ACCEPT | Rights.POLL_FD_READWRITE | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET;
export const RIGHTS_SOCKET =
  Rights.FD_READ |
  Rights.FD_WRITE |
  Rights.SOCK_SHUTDOWN |
  Rights.POLL_FD_READWRITE |
  Rights.FD_FDSTAT_SET_FLAGS |
  Rights.FD_FILESTAT_GET;

const socketStat = (): Filestat => ({
  dev: 0n,
  ino: 0n,
  filetype: Filetype.SOCKET_STREAM,
  nlink: 1n,
  size: 0n,
  atim: 0n,
  mtim: 0n,
  ctim: 0n,
});

/** Shared by both socket kinds: a would-block is EAGAIN when non-blocking, else a wait for the tunnel. */
abstract class NetworkDescriptor extends Descriptor {
  readonly filetype = Filetype.SOCKET_STREAM;

  constructor(
    protected readonly network: Network,
    state: CommonState,
  ) {
    super(BigInt(state.rightsBase), BigInt(state.rightsInheriting), state.fdflags);
  }

  override filestat(): Filestat {
    return socketStat();
  }

  protected wouldBlock(): Wait {
    if (this.fdflags & Fdflags.NONBLOCK) throw new WasiError(Errno.AGAIN);
    return this.network.changed();
  }
}

/** A listening socket the container declared (`roam run -p`): connections come through the gateway. */
export class ListenerDescriptor extends NetworkDescriptor {
  constructor(
    network: Network,
    private readonly state: ListenerState,
  ) {
    super(network, state);
  }

  override accept(fdflags: number): SocketDescriptor | Wait {
    this.network.touch();
    const connection = this.network.accept(this.state.port);
    if (!connection) return this.wouldBlock();
    return new SocketDescriptor(this.network, connection, {
      kind: 'socket',
      conn: connection.state.conn,
      rightsBase: RIGHTS_SOCKET.toString(),
      rightsInheriting: '0',
      fdflags,
    });
  }

  override poll(kind: 'read' | 'write'): bigint | Wait {
    this.network.touch();
    if (kind === 'write' || this.network.hasPending(this.state.port)) return 1n;
    return this.network.changed();
  }

  /**
   * Listening sockets sit at fds 3.., before the directories, and libc's start-up scan stops at
   * the first EBADF: they answer as a preopen of a kind it skips.
   */
  override prestat(): { type: number; name: string } {
    return { type: Preopentype.SOCKET, name: '' };
  }

  capture(): ListenerState {
    return { ...this.captureCommon(), kind: 'listener', port: this.state.port };
  }
}

/** An accepted client connection. */
export class SocketDescriptor extends NetworkDescriptor {
  private readonly connection: Connection;

  constructor(network: Network, connection: Connection | undefined, state: SocketState) {
    super(network, state);
    if (!connection) throw new WasiError(Errno.BADF);
    this.connection = connection;
  }

  static restore(network: Network, state: SocketState): SocketDescriptor {
    const connection = network.connection(state.conn);
    if (!connection)
      throw new WasiSetupError(`socket fd refers to connection ${state.conn}, which is not in the network state`);
    return new SocketDescriptor(network, connection, state);
  }

  override read(iovs: Uint8Array[]): number | Wait {
    return this.recv(iovs, 0)[0];
  }

  override recv(iovs: Uint8Array[], peek: number): [number | Wait, number] {
    this.network.touch();
    const c = this.connection;
    if (c.unread.length === 0) {
      if (c.state.finReceived || c.state.closed) return [0, 0];
      return [this.wouldBlock(), 0];
    }
    let total = 0;
    let chunk = 0;
    let within = 0;
    for (const iov of iovs) {
      let at = 0;
      while (at < iov.length && chunk < c.unread.length) {
        const head = c.unread[chunk]!;
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
      c.unread.splice(0, chunk);
      if (within > 0) c.unread[0] = c.unread[0]!.subarray(within);
    }
    return [total, 0];
  }

  override write(iovs: Uint8Array[]): number {
    this.network.touch();
    const c = this.connection;
    if (c.state.finSent) throw new WasiError(Errno.PIPE);
    const bytes = Buffer.concat(iovs.map((iov) => Buffer.from(iov)));
    if (bytes.length) this.network.send(c, bytes);
    return bytes.length;
  }

  override shutdown(how: number): void {
    this.network.touch();
    // SHUT_WR (2) or both (3): the client sees the end of the stream once it has every byte.
    if (how & 2) this.network.finish(this.connection);
    if (how & 1) this.connection.unread = [];
  }

  override poll(kind: 'read' | 'write'): bigint | Wait {
    this.network.touch();
    const c = this.connection;
    if (kind === 'read') {
      if (c.unread.length > 0 || c.state.finReceived) return BigInt(c.unreadBytes);
      return this.network.changed();
    }
    return c.unackedBytes < maxUnackedBytes ? 1n : this.network.changed();
  }

  override close(): void {
    this.network.close(this.connection);
  }

  capture(): SocketState {
    return { ...this.captureCommon(), kind: 'socket', conn: this.connection.state.conn };
  }
}

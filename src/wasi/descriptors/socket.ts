import { Errno, Fdflags, Filetype, Preopentype, Rights } from '../constants.js';
import { errnoOfCode, WasiError, WasiSetupError } from '../errors.js';
import {
  type Address,
  ANY4,
  ANY6,
  afOf,
  type Binding,
  type Family,
  isAny,
  isLocal,
  LOOPBACK6,
  type Loopback,
  type LoopbackListener,
  type StreamPair,
} from '../loopback.js';
import type { Connection, Network } from '../network.js';
import { maxUnackedBytes } from '../network.js';
import type { Filestat } from '../stat.js';
import { readChunks } from '../streams.js';
import { type CommonState, Descriptor, Wait } from './descriptor.js';

/**
 * Stream sockets, in the four states a guest's socket goes through. socket() makes an
 * `InetSocketDescriptor` (kind 'inet': unbound or bound); listen() and connect() turn it into a
 * `ListenerDescriptor` or a `StreamDescriptor` (the host puts the new one at every fd of the old
 * one, so dup'ed fds follow). A listener on a port the container publishes also accepts the
 * gateway's client connections (`SocketDescriptor`, over the tunnel of network.ts), like the
 * listeners handed in at fds 3.. (LISTEN_FDS); a connect() to a listener of the container gives
 * an in-container stream pair (loopback.ts). Everything is captured as plain data.
 */

/** Socket options, numbered for the roam_posix sock_getopt/sock_setopt calls (runtime/posix/sockets.c). */
export const SockOpt = {
  TYPE: 1,
  ERROR: 2,
  ACCEPTCONN: 3,
  DOMAIN: 4,
  REUSEADDR: 5,
  REUSEPORT: 6,
  KEEPALIVE: 7,
  RCVBUF: 8,
  SNDBUF: 9,
  /** -1 off, else the linger time in seconds. */
  LINGER: 10,
  NODELAY: 11,
  KEEPIDLE: 12,
  KEEPINTVL: 13,
  KEEPCNT: 14,
  V6ONLY: 15,
  /** Milliseconds, 0: none; the POSIX layer waits with poll() before recv, send and accept. */
  RCVTIMEO: 16,
  SNDTIMEO: 17,
} as const;

/** Linux's defaults for the options a guest may set. */
const DEFAULTS: Record<number, number> = {
  [SockOpt.REUSEADDR]: 0,
  [SockOpt.REUSEPORT]: 0,
  [SockOpt.KEEPALIVE]: 0,
  [SockOpt.RCVBUF]: 131072,
  [SockOpt.SNDBUF]: 16384,
  [SockOpt.LINGER]: -1,
  [SockOpt.NODELAY]: 0,
  [SockOpt.KEEPIDLE]: 7200,
  [SockOpt.KEEPINTVL]: 75,
  [SockOpt.KEEPCNT]: 9,
  [SockOpt.V6ONLY]: 0,
  [SockOpt.RCVTIMEO]: 0,
  [SockOpt.SNDTIMEO]: 0,
};
const TCP_OPTIONS: readonly number[] = [SockOpt.NODELAY, SockOpt.KEEPIDLE, SockOpt.KEEPINTVL, SockOpt.KEEPCNT];
const SOCK_STREAM = Filetype.SOCKET_STREAM;

/** Options set by the guest, by SockOpt number (as strings, JSON keys). */
export type SocketOptions = Record<string, number>;

interface SocketCommon extends CommonState {
  /** Absent in a listener handed in at start-up: 'inet'. */
  family?: Family;
  options?: SocketOptions;
}

/** A socket neither listening nor connected; `bound` once bind() (or an implicit bind) held. */
export type InetSocketState = SocketCommon & { kind: 'inet'; family: Family; bound?: Address };
/**
 * A listening socket: handed in (LISTEN_FDS: no `bound`) or made by the guest (`bound`, its
 * address). `pending`: in-container connections not accepted yet (stream pair ids).
 */
export type ListenerState = SocketCommon & { kind: 'listener'; port: number; bound?: Address; pending?: number[] };
/** A client connection that came through the gateway, or an outgoing connection the gateway holds. */
export type SocketState = SocketCommon & { kind: 'socket'; conn: number };
/** One side of an in-container connection; `ownsPort`: its local port is its own binding (connect side). */
export type StreamState = SocketCommon & {
  kind: 'stream';
  pair: number;
  side: 0 | 1;
  readShut?: boolean;
  ownsPort?: boolean;
};

export const RIGHTS_LISTENER =
  Rights.SOCK_ACCEPT | Rights.POLL_FD_READWRITE | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET;
export const RIGHTS_SOCKET =
  Rights.FD_READ |
  Rights.FD_WRITE |
  Rights.SOCK_SHUTDOWN |
  Rights.POLL_FD_READWRITE |
  Rights.FD_FDSTAT_SET_FLAGS |
  Rights.FD_FILESTAT_GET;
/** A socket that may still become either. */
export const RIGHTS_NEW_SOCKET = RIGHTS_LISTENER | RIGHTS_SOCKET;

/** What socket descriptors share: the container's network (if it has a gateway) and its loopback. */
export interface SocketContext {
  loopback: Loopback;
  network: Network | undefined;
  /** False for a plain module: a wait only the guest itself could end is EDEADLK instead. */
  canSuspend: boolean;
}

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

const loopbackOf = (family: Family): string => (family === 'inet6' ? LOOPBACK6 : '127.0.0.1');

/** The base of every socket kind: family, options, addresses, and what a socket cannot do yet. */
export abstract class SocketBase extends Descriptor {
  readonly filetype = Filetype.SOCKET_STREAM;
  readonly family: Family;
  protected readonly options: SocketOptions;

  constructor(
    protected readonly ctx: SocketContext,
    state: SocketCommon,
  ) {
    super(BigInt(state.rightsBase), BigInt(state.rightsInheriting), state.fdflags);
    this.family = state.family ?? 'inet';
    this.options = { ...state.options };
  }

  override filestat(): Filestat {
    return socketStat();
  }

  /** getsockname: undefined when not bound (the layer answers the family's any address, port 0). */
  abstract localAddress(): Address | undefined;

  /** getpeername. */
  peerAddress(): Address {
    throw new WasiError(Errno.NOTCONN);
  }

  bind(_address: Address): void {
    throw new WasiError(Errno.INVAL);
  }

  /** listen(): the descriptor that now stands for the socket (this one or a new one). */
  listen(_backlog: number): SocketBase {
    throw new WasiError(Errno.INVAL);
  }

  /** connect(): the connected descriptor that replaces this one. */
  connect(_to: Address): SocketBase {
    throw new WasiError(Errno.ISCONN);
  }

  /** An outgoing connection still being made (connect() then answers EINPROGRESS). */
  get inProgress(): boolean {
    return false;
  }

  getOption(option: number): number {
    switch (option) {
      case SockOpt.TYPE:
        return SOCK_STREAM;
      case SockOpt.ERROR:
        // Every failure is reported by the call that met it (connect completes at once).
        return 0;
      case SockOpt.ACCEPTCONN:
        return this instanceof ListenerDescriptor ? 1 : 0;
      case SockOpt.DOMAIN:
        return afOf(this.family);
    }
    this.checkOption(option);
    return this.options[option] ?? DEFAULTS[option]!;
  }

  setOption(option: number, value: number): void {
    this.checkOption(option);
    if (option === SockOpt.RCVBUF || option === SockOpt.SNDBUF) {
      // As Linux: the kernel doubles the size asked for (for its bookkeeping), within its minimum.
      const minimum = option === SockOpt.RCVBUF ? 2304 : 4608;
      value = Math.max(minimum, Math.min(2 * value, 2 ** 31 - 1));
    } else if (option === SockOpt.LINGER) {
      value = value < 0 ? -1 : value;
    } else if (option === SockOpt.RCVTIMEO || option === SockOpt.SNDTIMEO) {
      value = Math.max(0, value);
    } else if (option === SockOpt.KEEPIDLE || option === SockOpt.KEEPINTVL || option === SockOpt.KEEPCNT) {
      if (value < 1) throw new WasiError(Errno.INVAL);
    } else {
      value = value ? 1 : 0;
    }
    this.options[option] = value;
  }

  private checkOption(option: number): void {
    if (!(option in DEFAULTS)) throw new WasiError(Errno.NOPROTOOPT);
    if (option === SockOpt.V6ONLY && this.family !== 'inet6') throw new WasiError(Errno.NOPROTOOPT);
    if (TCP_OPTIONS.includes(option) && this.family === 'unix') throw new WasiError(Errno.NOTSUP);
  }

  protected option(option: number): number {
    return this.options[option] ?? DEFAULTS[option]!;
  }

  protected captureSocket(): SocketCommon {
    return {
      ...this.captureCommon(),
      family: this.family,
      ...(Object.keys(this.options).length ? { options: { ...this.options } } : {}),
    };
  }

  /** The state the socket's next form starts from: the same options, flags and family. */
  protected successor(rights: bigint, inheriting: bigint): SocketCommon {
    return { ...this.captureSocket(), rightsBase: rights.toString(), rightsInheriting: inheriting.toString() };
  }

  protected wouldBlock(onChange: () => Promise<void>): Wait {
    if (this.fdflags & Fdflags.NONBLOCK) throw new WasiError(Errno.AGAIN);
    if (!this.ctx.canSuspend) throw new WasiError(Errno.DEADLK);
    return new Wait(onChange());
  }
}

/** A guest's new socket (socket()): unbound, then perhaps bound; listen() or connect() comes next. */
export class InetSocketDescriptor extends SocketBase {
  private binding: Binding | undefined;

  constructor(ctx: SocketContext, state: InetSocketState) {
    super(ctx, state);
    if (state.bound) {
      this.binding = this.bindingFor(state.bound);
      ctx.loopback.rebind(this.binding);
    }
  }

  static create(ctx: SocketContext, family: Family, fdflags: number): InetSocketDescriptor {
    return new InetSocketDescriptor(ctx, {
      kind: 'inet',
      family,
      rightsBase: RIGHTS_NEW_SOCKET.toString(),
      rightsInheriting: RIGHTS_SOCKET.toString(),
      fdflags,
    });
  }

  private bindingFor(address: Address): Binding {
    return {
      address: { ...address },
      v6only: this.option(SockOpt.V6ONLY) === 1,
      reusePort: this.option(SockOpt.REUSEPORT) === 1,
    };
  }

  override localAddress(): Address | undefined {
    return this.binding && { ...this.binding.address };
  }

  override bind(address: Address): void {
    if (this.binding) throw new WasiError(Errno.INVAL);
    if (address.family !== this.family) throw new WasiError(Errno.AFNOSUPPORT);
    if (!isLocal(address)) throw new WasiError(Errno.ADDRNOTAVAIL);
    const binding = this.bindingFor(address);
    this.ctx.loopback.bind(binding);
    this.binding = binding;
  }

  /** Binds to the family's any address (listen) or loopback (connect) on an ephemeral port. */
  private autobind(addr: string): Binding {
    if (!this.binding) this.bind({ family: this.family, addr, port: 0 });
    return this.binding!;
  }

  override listen(_backlog: number): SocketBase {
    const binding = this.autobind(this.family === 'inet6' ? ANY6 : ANY4);
    this.binding = undefined; // the listener holds it from now on
    return new ListenerDescriptor(
      this.ctx,
      { ...this.successor(RIGHTS_LISTENER, RIGHTS_SOCKET), kind: 'listener', port: binding.address.port },
      binding,
    );
  }

  override connect(to: Address): SocketBase {
    if (to.family !== this.family) throw new WasiError(Errno.AFNOSUPPORT);
    if (to.port === 0) throw new WasiError(Errno.CONNREFUSED);
    if (!isLocal(to)) return this.connectOut(to);
    // connect() to the any address means this host, as on Linux.
    const target = isAny(to) ? { ...to, addr: loopbackOf(to.family) } : to;
    const listener = this.ctx.loopback.listenerFor(target);
    if (!listener) throw new WasiError(Errno.CONNREFUSED);
    const binding = this.autobind(loopbackOf(this.family));
    this.binding = undefined; // the stream holds it from now on
    const local = isAny(binding.address) ? { ...binding.address, addr: target.addr } : { ...binding.address };
    const pair = this.ctx.loopback.pair(this.family, local, { ...target });
    listener.enqueue(pair);
    return new StreamDescriptor(
      this.ctx,
      pair,
      { ...this.successor(RIGHTS_SOCKET, 0n), kind: 'stream', pair: pair.id, side: 0, ownsPort: true },
      binding,
    );
  }

  /** To another host: through the gateway, which holds the real connection wherever the guest moves. */
  private connectOut(to: Address): SocketBase {
    const network = this.ctx.network;
    if (!network) throw new WasiError(Errno.NETUNREACH);
    if (!network.allows(to.addr, to.port)) throw new WasiError(Errno.ACCES);
    if (this.binding) this.ctx.loopback.unbind(this.binding);
    this.binding = undefined;
    const connection = network.connect(to.addr, to.port);
    return new SocketDescriptor(this.ctx, connection, {
      ...this.successor(RIGHTS_SOCKET, 0n),
      kind: 'socket',
      conn: connection.state.conn,
    });
  }

  override read(): number {
    throw new WasiError(Errno.NOTCONN);
  }
  override recv(): [number, number] {
    throw new WasiError(Errno.NOTCONN);
  }
  override write(): number {
    throw new WasiError(Errno.NOTCONN);
  }
  override shutdown(): void {
    throw new WasiError(Errno.NOTCONN);
  }
  override accept(): Descriptor {
    throw new WasiError(Errno.INVAL);
  }

  /** As Linux for a socket that is not connected: ready (the call then fails at once). */
  override poll(): bigint {
    return 0n;
  }

  override close(): void {
    if (this.binding) this.ctx.loopback.unbind(this.binding);
    this.binding = undefined;
  }

  capture(): InetSocketState {
    return {
      ...this.captureSocket(),
      kind: 'inet',
      family: this.family,
      ...(this.binding ? { bound: { ...this.binding.address } } : {}),
    };
  }
}

/**
 * A listening socket: handed in by `roam run -p` (LISTEN_FDS) or made by the guest. It accepts
 * in-container connections (connect() to its address) and, when its port is one the container
 * publishes, the gateway's client connections.
 */
export class ListenerDescriptor extends SocketBase implements LoopbackListener {
  readonly address: Address;
  readonly v6only: boolean;
  readonly bound: boolean;
  private readonly pending: StreamPair[] = [];
  private change: { ready: Promise<void>; settle: () => void } | undefined;
  private closed = false;

  constructor(
    ctx: SocketContext,
    private readonly state: ListenerState,
    private readonly binding?: Binding,
  ) {
    super(ctx, state);
    this.bound = state.bound !== undefined || binding !== undefined;
    this.address = binding?.address ?? state.bound ?? { family: 'inet', addr: ANY4, port: state.port };
    this.v6only = this.option(SockOpt.V6ONLY) === 1;
    if (state.bound && !binding) {
      this.binding = {
        address: { ...state.bound },
        v6only: this.v6only,
        reusePort: this.option(SockOpt.REUSEPORT) === 1,
      };
      ctx.loopback.rebind(this.binding);
    }
    for (const id of state.pending ?? []) this.pending.push(ctx.loopback.restoredPair(id));
    ctx.loopback.addListener(this);
  }

  /** Whether the gateway brings client connections to this port. */
  private get network(): Network | undefined {
    const network = this.ctx.network;
    return network?.options.ports.includes(this.state.port) ? network : undefined;
  }

  enqueue(pair: StreamPair): void {
    this.pending.push(pair);
    this.changed();
  }

  private next(): Promise<void> {
    if (this.change === undefined) {
      let settle!: () => void;
      const ready = new Promise<void>((resolve) => (settle = resolve));
      this.change = { ready, settle };
    }
    return this.change.ready;
  }

  private changed(): void {
    const change = this.change;
    this.change = undefined;
    change?.settle();
  }

  override localAddress(): Address {
    return { ...this.address };
  }

  /** Again: nothing changes (the queue of connections is not limited by the backlog). */
  override listen(_backlog: number): SocketBase {
    return this;
  }

  override accept(fdflags: number): SocketBase | Wait {
    const network = this.network;
    network?.touch();
    const pair = this.pending.shift();
    const common = { ...this.successor(RIGHTS_SOCKET, 0n), fdflags };
    if (pair) return new StreamDescriptor(this.ctx, pair, { ...common, kind: 'stream', pair: pair.id, side: 1 });
    const connection = network?.accept(this.state.port);
    if (connection)
      return new SocketDescriptor(this.ctx, connection, { ...common, kind: 'socket', conn: connection.state.conn });
    return this.waitForConnection(network);
  }

  private waitForConnection(network: Network | undefined): Wait {
    if (!network) return this.wouldBlock(() => this.next());
    if (this.fdflags & Fdflags.NONBLOCK) throw new WasiError(Errno.AGAIN);
    return either(network.changed(), this.next());
  }

  override poll(kind: 'read' | 'write'): bigint | Wait {
    const network = this.network;
    network?.touch();
    if (kind === 'write' || this.pending.length > 0 || network?.hasPending(this.state.port)) return 1n;
    return network ? either(network.changed(), this.next()) : new Wait(this.next());
  }

  /** Clients of the gateway keep their order; connections made inside the container have none. */
  override readySince(): number | undefined {
    return this.pending.length > 0 ? undefined : this.network?.pendingSince(this.state.port);
  }

  override read(): number {
    throw new WasiError(Errno.NOTCONN);
  }
  override recv(): [number, number] {
    throw new WasiError(Errno.NOTCONN);
  }
  override shutdown(): void {
    throw new WasiError(Errno.NOTCONN);
  }

  /**
   * Listening sockets handed in sit at fds 3.., before the directories, and libc's start-up scan
   * stops at the first EBADF: they answer as a preopen of a kind it skips.
   */
  override prestat(): { type: number; name: string } | undefined {
    return this.bound ? undefined : { type: Preopentype.SOCKET, name: '' };
  }

  override close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ctx.loopback.removeListener(this);
    if (this.binding) this.ctx.loopback.unbind(this.binding);
    // Connections nobody accepted are reset: their clients read the end of the stream.
    for (const pair of this.pending.splice(0)) this.ctx.loopback.release(pair, 1);
    this.changed();
  }

  capture(): ListenerState {
    return {
      ...this.captureSocket(),
      kind: 'listener',
      port: this.state.port,
      ...(this.bound ? { bound: { ...this.address } } : {}),
      ...(this.pending.length ? { pending: this.pending.map((p) => p.id) } : {}),
    };
  }
}

/** One side of an in-container connection (connect() to a listener of the container, or socketpair()). */
export class StreamDescriptor extends SocketBase {
  private readonly side: 0 | 1;
  private readShut: boolean;
  private closed = false;

  constructor(
    ctx: SocketContext,
    private readonly pair: StreamPair,
    state: StreamState,
    private readonly binding?: Binding,
  ) {
    super(ctx, { ...state, family: pair.family });
    this.side = state.side;
    this.readShut = state.readShut ?? false;
    if (state.ownsPort && !binding) {
      this.binding = { address: { ...pair.addresses[state.side] }, v6only: false, reusePort: false };
      ctx.loopback.rebind(this.binding);
    }
  }

  static restore(ctx: SocketContext, state: StreamState): StreamDescriptor {
    return new StreamDescriptor(ctx, ctx.loopback.restoredPair(state.pair), state);
  }

  /** socketpair(): both sides of a new pair of `family`. */
  static socketpair(ctx: SocketContext, family: Family): [StreamDescriptor, StreamDescriptor] {
    const nowhere = { family, addr: '', port: 0 };
    const pair = ctx.loopback.pair(family, nowhere, { ...nowhere });
    const state = (side: 0 | 1): StreamState => ({
      kind: 'stream',
      family,
      pair: pair.id,
      side,
      rightsBase: RIGHTS_SOCKET.toString(),
      rightsInheriting: '0',
      fdflags: 0,
    });
    return [new StreamDescriptor(ctx, pair, state(0)), new StreamDescriptor(ctx, pair, state(1))];
  }

  private get peer(): 0 | 1 {
    return this.side === 0 ? 1 : 0;
  }

  override localAddress(): Address {
    return { ...this.pair.addresses[this.side] };
  }

  override peerAddress(): Address {
    return { ...this.pair.addresses[this.peer] };
  }

  override read(iovs: Uint8Array[]): number | Wait {
    return this.recv(iovs, 0)[0];
  }

  override recv(iovs: Uint8Array[], peek: number): [number | Wait, number] {
    const pair = this.pair;
    if (iovs.every((iov) => iov.length === 0)) return [0, 0];
    if (this.readShut) return [0, 0];
    if (pair.readable(this.side) > 0) return [pair.take(this.side, iovs, peek !== 0), 0];
    if (pair.fin[this.peer] || !pair.open[this.peer]) return [0, 0];
    return [this.wouldBlock(() => pair.next()), 0];
  }

  /** What fits (a stream takes part of a write); EPIPE once either side ended the direction. */
  override write(iovs: Uint8Array[]): number | Wait {
    const pair = this.pair;
    if (pair.fin[this.side] || !pair.open[this.peer]) throw new WasiError(Errno.PIPE);
    const total = iovs.reduce((n, iov) => n + iov.length, 0);
    if (total === 0) return 0;
    const space = pair.space(this.side);
    if (space <= 0) return this.wouldBlock(() => pair.next());
    return pair.put(this.side, iovs, Math.min(total, space));
  }

  override shutdown(how: number): void {
    // SHUT_RD (1): reads see the end of the stream; SHUT_WR (2): the peer does, once it has every byte.
    if (how & 1) this.readShut = true;
    if (how & 2) this.pair.finish(this.side);
  }

  override poll(kind: 'read' | 'write'): bigint | Wait {
    const pair = this.pair;
    if (kind === 'read') {
      const n = pair.readable(this.side);
      if (n > 0 || this.readShut || pair.fin[this.peer] || !pair.open[this.peer]) return BigInt(n);
    } else {
      if (pair.fin[this.side] || !pair.open[this.peer]) return 0n;
      const space = pair.space(this.side);
      if (space > 0) return BigInt(space);
    }
    return new Wait(pair.next());
  }

  override close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ctx.loopback.release(this.pair, this.side);
    if (this.binding) this.ctx.loopback.unbind(this.binding);
  }

  capture(): StreamState {
    return {
      ...this.captureSocket(),
      kind: 'stream',
      pair: this.pair.id,
      side: this.side,
      ...(this.readShut ? { readShut: true } : {}),
      ...(this.binding ? { ownsPort: true } : {}),
    };
  }
}

/** A client connection that came through the gateway. */
export class SocketDescriptor extends SocketBase {
  private readonly connection: Connection;
  private readonly network: Network;

  constructor(ctx: SocketContext, connection: Connection | undefined, state: SocketState) {
    super(ctx, state);
    if (!connection || !ctx.network) throw new WasiError(Errno.BADF);
    this.connection = connection;
    this.network = ctx.network;
  }

  static restore(ctx: SocketContext, state: SocketState): SocketDescriptor {
    const connection = ctx.network?.connection(state.conn);
    if (!connection)
      throw new WasiSetupError(`socket fd refers to connection ${state.conn}, which is not in the network state`);
    return new SocketDescriptor(ctx, connection, state);
  }

  /** The guest's port, on the container's loopback address (the gateway is its only way in). */
  override localAddress(): Address {
    return { family: this.family, addr: loopbackOf(this.family), port: this.connection.state.port };
  }

  override get inProgress(): boolean {
    return this.connection.state.outbound === 'connecting';
  }

  /** Why an outgoing connection failed, as the errno its calls return. */
  private get failure(): number | undefined {
    const outbound = this.connection.state.outbound;
    return typeof outbound === 'object' ? errnoOfCode(outbound.failed) : undefined;
  }

  override getOption(option: number): number {
    return option === SockOpt.ERROR ? (this.failure ?? 0) : super.getOption(option);
  }

  /** The client's address as the gateway saw it (from an older gateway, loopback and port 0); the address connected to. */
  override peerAddress(): Address {
    if (this.failure !== undefined) throw new WasiError(Errno.NOTCONN);
    const peer = this.connection.state.peer;
    if (peer && this.connection.state.outbound) return { family: this.family, ...peer };
    if (!peer) return { family: this.family, addr: loopbackOf(this.family), port: 0 };
    if (this.family === 'inet') return { family: 'inet', ...peer };
    // An IPv6 socket sees an IPv4 client at its v4-mapped address (::ffff:a.b.c.d).
    const [a, b, c, d] = peer.addr.split('.').map(Number) as [number, number, number, number];
    const mapped = `0:0:0:0:0:ffff:${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
    return { family: 'inet6', addr: mapped, port: peer.port };
  }

  private wait(): Wait {
    if (this.fdflags & Fdflags.NONBLOCK) throw new WasiError(Errno.AGAIN);
    return this.network.changed();
  }

  override read(iovs: Uint8Array[]): number | Wait {
    return this.recv(iovs, 0)[0];
  }

  override recv(iovs: Uint8Array[], peek: number): [number | Wait, number] {
    this.network.touch();
    const c = this.connection;
    if (this.failure !== undefined) throw new WasiError(this.failure);
    if (c.unread.length === 0) {
      if (c.state.reset === 'pending' && !c.state.closed) {
        c.state.reset = 'reported';
        throw new WasiError(Errno.CONNRESET);
      }
      if (c.state.finReceived || c.state.closed) return [0, 0];
      return [this.wait(), 0];
    }
    const total = readChunks(c.unread, iovs, peek !== 0);
    if (c.unread.length === 0 && !c.state.finReceived) c.arrivedAt = undefined;
    return [total, 0];
  }

  override write(iovs: Uint8Array[]): number {
    this.network.touch();
    const c = this.connection;
    if (this.failure !== undefined) throw new WasiError(this.failure);
    // After a reset the peer takes nothing more: the first call to notice says ECONNRESET, later ones EPIPE (Linux).
    if (c.state.reset === 'pending') {
      c.state.reset = 'reported';
      throw new WasiError(Errno.CONNRESET);
    }
    if (c.state.finSent || c.state.reset) throw new WasiError(Errno.PIPE);
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
    if (this.failure !== undefined) return 1n;
    if (this.inProgress) return this.network.changed();
    if (kind === 'read') {
      if (c.unread.length > 0 || c.state.finReceived) return BigInt(c.unreadBytes);
      return this.network.changed();
    }
    return c.unackedBytes < maxUnackedBytes ? 1n : this.network.changed();
  }

  override readySince(): number | undefined {
    return this.connection.arrivedAt;
  }

  override close(): void {
    this.network.close(this.connection);
  }

  capture(): SocketState {
    return { ...this.captureSocket(), kind: 'socket', conn: this.connection.state.conn };
  }
}

/** A Wait that settles when either settles; cancelling it cancels both. */
function either(a: Wait, b: Promise<void>): Wait {
  return new Wait(Promise.race([a.ready, b]), { cancel: () => a.cancel() });
}

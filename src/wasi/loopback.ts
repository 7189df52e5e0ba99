import { Errno } from './constants.js';
import { WasiError, WasiSetupError } from './errors.js';
import { ChangeSignal, readChunks } from './streams.js';

/**
 * The container's own network: the ports its sockets are bound to, the listeners a loopback
 * connect() can reach, and the in-container connections (stream pairs) with their bytes in
 * flight. Owned by the WASI host, captured with it (pairs as plain data; bindings and listeners
 * are rebuilt by the descriptors that hold them), the same on every node.
 */

/** The address families of wasi-libc's headers (AF_INET 1, AF_INET6 2, AF_UNIX 3). */
export const AddressFamily = { INET: 1, INET6: 2, UNIX: 3 } as const;
export type Family = 'inet' | 'inet6' | 'unix';

export function familyOf(af: number): Family | undefined {
  return af === AddressFamily.INET
    ? 'inet'
    : af === AddressFamily.INET6
      ? 'inet6'
      : af === AddressFamily.UNIX
        ? 'unix'
        : undefined;
}

export function afOf(family: Family): number {
  return family === 'inet' ? AddressFamily.INET : family === 'inet6' ? AddressFamily.INET6 : AddressFamily.UNIX;
}

/** A socket address as data: `addr` in its canonical text (dotted quad, eight hex groups, or ''). */
export interface Address {
  family: Family;
  addr: string;
  port: number;
}

/** The 16 address bytes the POSIX layer passes (IPv4 in the first 4) as canonical text. */
export function addrText(family: Family, bytes: Uint8Array): string {
  if (family === 'inet') return [...bytes.subarray(0, 4)].join('.');
  if (family === 'unix') return '';
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':');
}

/** The inverse of addrText: 16 bytes. */
export function addrBytes(address: Address): Uint8Array {
  const out = new Uint8Array(16);
  if (address.family === 'inet') out.set(address.addr.split('.').map(Number));
  else if (address.family === 'inet6')
    address.addr.split(':').forEach((g, i) => {
      const n = Number.parseInt(g, 16);
      out[2 * i] = n >> 8;
      out[2 * i + 1] = n & 0xff;
    });
  return out;
}

/** An IPv6 address in any text form (`::1`, `::ffff:1.2.3.4`) as addrText writes it: eight groups. */
export function ipv6Groups(text: string): string {
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  const [a, b, c, d] = (v4 ?? []).slice(1).map(Number) as number[];
  const head = v4
    ? `${text.slice(0, v4.index)}${((a! << 8) | b!).toString(16)}:${((c! << 8) | d!).toString(16)}`
    : text;
  const [left, right] = head.split('::') as [string, string | undefined];
  const groups = [left ? left.split(':') : [], right ? right.split(':') : []] as const;
  const zeros = right === undefined ? [] : Array<string>(8 - groups[0].length - groups[1].length).fill('0');
  return [...groups[0], ...zeros, ...groups[1]].map((g) => Number.parseInt(g, 16).toString(16)).join(':');
}

export const ANY4 = '0.0.0.0';
export const ANY6 = '0:0:0:0:0:0:0:0';
export const LOOPBACK6 = '0:0:0:0:0:0:0:1';
const MAPPED_PREFIX = '0:0:0:0:0:ffff:';

export const isAny = (a: Address) => a.addr === (a.family === 'inet' ? ANY4 : ANY6);

/** An IPv4 address as IPv6 code sees it in a v4-mapped address, or undefined. */
function unmapped(a: Address): string | undefined {
  if (a.family !== 'inet6' || !a.addr.startsWith(MAPPED_PREFIX)) return undefined;
  const [hi, lo] = a.addr
    .slice(MAPPED_PREFIX.length)
    .split(':')
    .map((g) => Number.parseInt(g, 16)) as [number, number];
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

/** Addresses of this container: any, 127.0.0.0/8, ::1 (and v4-mapped loopback). */
export function isLocal(a: Address): boolean {
  if (isAny(a)) return true;
  const v4 = a.family === 'inet' ? a.addr : unmapped(a);
  if (v4 !== undefined) return v4.startsWith('127.') || v4 === ANY4;
  return a.addr === LOOPBACK6;
}

/** A socket's claim on a port (bind). */
export interface Binding {
  address: Address;
  v6only: boolean;
  reusePort: boolean;
}

/** What a loopback connect() reaches: a listening socket's address and its queue. */
export interface LoopbackListener {
  readonly address: Address;
  readonly v6only: boolean;
  /** Made by the guest (bind + listen), rather than handed in (LISTEN_FDS). */
  readonly bound: boolean;
  /** A new connection for the listener: its server side is pending until accepted. */
  enqueue(pair: StreamPair): void;
}

/** How many bytes each direction of a stream pair holds before writes wait. */
export const STREAM_CAPACITY = 256 * 1024;

export interface PairState {
  id: number;
  family: Family;
  /** Side 0 is the connecting socket, side 1 the accepted one: each side's own address. */
  addresses: [Address, Address];
  /** Bytes written by side i that side 1 - i has not read, base64. */
  data: [string, string];
  /** Side i will write no more (shutdown SHUT_WR or close). */
  fin: [boolean, boolean];
  /** Side i has a descriptor (or a listener's queue) holding it. */
  open: [boolean, boolean];
}

/**
 * A connection inside the container, as the socket descriptors see it: two directions of
 * buffered bytes, like two pipes; side i writes direction i and reads direction 1 - i.
 */
export interface StreamPair {
  readonly id: number;
  readonly family: Family;
  /** Side 0 is the connecting socket, side 1 the accepted one: each side's own address. */
  readonly addresses: [Address, Address];
  /** Side i will write no more (shutdown SHUT_WR or close). */
  readonly fin: readonly [boolean, boolean];
  /** Side i has a descriptor (or a listener's queue) holding it. */
  readonly open: readonly [boolean, boolean];
  /** Bytes side `side` may read. */
  readable(side: 0 | 1): number;
  /** Room for side `side`'s writes. */
  space(side: 0 | 1): number;
  /** Side `side` reads into the iovecs (leaving the bytes when peeking). */
  take(side: 0 | 1, iovs: Uint8Array[], peek: boolean): number;
  /** Side `side` writes up to `max` bytes of the iovecs. */
  put(side: 0 | 1, iovs: Uint8Array[], max: number): number;
  finish(side: 0 | 1): void;
  /** Side `side` is gone: it finishes, and what was sent to it is dropped. */
  release(side: 0 | 1): void;
  /** Settles at the next change: bytes moved, a side finished or closed. */
  next(): Promise<void>;
  capture(): PairState;
}

/**
 * A stream pair of one guest: its bytes in queues of this thread. Only the guest itself moves
 * bytes through it, so a wait on it ends when the guest (another of its threads, or a test) acts
 * on the other side.
 */
export class QueuePair implements StreamPair {
  readonly data: [Buffer[], Buffer[]] = [[], []];
  readonly fin: [boolean, boolean];
  readonly open: [boolean, boolean];
  private readonly signal = new ChangeSignal();

  constructor(
    readonly id: number,
    readonly family: Family,
    readonly addresses: [Address, Address],
    state?: PairState,
  ) {
    this.fin = state ? [...state.fin] : [false, false];
    this.open = state ? [...state.open] : [true, true];
    for (const side of [0, 1] as const) {
      const bytes = Buffer.from(state?.data[side] ?? '', 'base64');
      if (bytes.length) this.data[side].push(bytes);
    }
  }

  /** Bytes side `side` may read. */
  readable(side: 0 | 1): number {
    return this.data[1 - side]!.reduce((n, b) => n + b.length, 0);
  }

  /** Room for side `side`'s writes. */
  space(side: 0 | 1): number {
    return STREAM_CAPACITY - this.data[side].reduce((n, b) => n + b.length, 0);
  }

  /** Side `side` reads into the iovecs (leaving the bytes when peeking). */
  take(side: 0 | 1, iovs: Uint8Array[], peek: boolean): number {
    const total = readChunks(this.data[1 - side]!, iovs, peek);
    if (!peek && total > 0) this.changed();
    return total;
  }

  /** Side `side` writes up to `max` bytes of the iovecs. */
  put(side: 0 | 1, iovs: Uint8Array[], max: number): number {
    const bytes = Buffer.concat(iovs.map((iov) => Buffer.from(iov))).subarray(0, max);
    if (bytes.length) {
      this.data[side].push(Buffer.from(bytes));
      this.changed();
    }
    return bytes.length;
  }

  finish(side: 0 | 1): void {
    if (this.fin[side]) return;
    this.fin[side] = true;
    this.changed();
  }

  release(side: 0 | 1): void {
    this.open[side] = false;
    this.finish(side);
    this.data[1 - side] = [];
    this.changed();
  }

  /** Settles at the next change: bytes moved, a side finished or closed. */
  next(): Promise<void> {
    return this.signal.next();
  }

  changed(): void {
    this.signal.changed();
  }

  capture(): PairState {
    return {
      id: this.id,
      family: this.family,
      addresses: [{ ...this.addresses[0] }, { ...this.addresses[1] }],
      data: [Buffer.concat(this.data[0]).toString('base64'), Buffer.concat(this.data[1]).toString('base64')],
      fin: [...this.fin],
      open: [...this.open],
    };
  }
}

export interface LoopbackState {
  pairs: PairState[];
}

/** Ephemeral ports, as Linux's default ip_local_port_range. */
const EPHEMERAL_FIRST = 32768;
const EPHEMERAL_LAST = 60999;

/**
 * The container's network as the socket descriptors use it: port claims, the listeners a
 * loopback connect() reaches, and the stream pairs of its connections.
 */
export interface Loopback {
  /** Claims `binding.address` (port 0: an ephemeral port, written back); EADDRINUSE if taken. */
  bind(binding: Binding): void;
  /** A binding restored from a capture: it held before, so it holds again. */
  rebind(binding: Binding): void;
  unbind(binding: Binding): void;
  addListener(listener: LoopbackListener): void;
  removeListener(listener: LoopbackListener): void;
  /** The listener a connect() to `to` reaches, if any: guest-bound ones first, in bind order. */
  listenerFor(to: Address): LoopbackListener | undefined;
  /** A new in-container connection from `from` (side 0) to `to` (side 1). */
  pair(family: Family, from: Address, to: Address): StreamPair;
  /** A pair of the captured state, for a descriptor being restored. */
  restoredPair(id: number): StreamPair;
  /** Side `side` of the pair is gone (its last fd closed, or its listener closed before accepting it). */
  release(pair: StreamPair, side: 0 | 1): void;
  /** The pairs this host captures with its guest (none when the container's owner keeps them). */
  capture(): LoopbackState;
}

/** The network of a container of one process: everything on the guest's thread. */
export class LocalLoopback implements Loopback {
  private readonly bindings = new Set<Binding>();
  private readonly listeners = new Set<LoopbackListener>();
  private readonly pairs = new Map<number, StreamPair>();
  private nextPair = 0;
  private nextEphemeral = EPHEMERAL_FIRST;

  constructor(state?: LoopbackState) {
    for (const p of state?.pairs ?? []) {
      if (this.pairs.has(p.id)) throw new WasiSetupError(`WASI host: stream pair ${p.id} appears twice in the state`);
      this.pairs.set(p.id, new QueuePair(p.id, p.family, p.addresses, p));
      this.nextPair = Math.max(this.nextPair, p.id + 1);
    }
  }

  /** Claims `binding.address` (port 0: an ephemeral port, written back); EADDRINUSE if taken. */
  bind(binding: Binding): void {
    if (binding.address.port === 0) binding.address.port = this.ephemeralPort(binding);
    else if ([...this.bindings].some((b) => conflicts(b, binding))) throw new WasiError(Errno.ADDRINUSE);
    this.bindings.add(binding);
  }

  /** A binding restored from a capture: it held before, so it holds again. */
  rebind(binding: Binding): void {
    this.bindings.add(binding);
  }

  unbind(binding: Binding): void {
    this.bindings.delete(binding);
  }

  private ephemeralPort(binding: Binding): number {
    for (let i = 0; i <= EPHEMERAL_LAST - EPHEMERAL_FIRST; i++) {
      const port = this.nextEphemeral;
      this.nextEphemeral = port === EPHEMERAL_LAST ? EPHEMERAL_FIRST : port + 1;
      const candidate = { ...binding, address: { ...binding.address, port } };
      if (![...this.bindings].some((b) => conflicts(b, candidate))) return port;
    }
    throw new WasiError(Errno.ADDRINUSE);
  }

  addListener(listener: LoopbackListener): void {
    this.listeners.add(listener);
  }

  removeListener(listener: LoopbackListener): void {
    this.listeners.delete(listener);
  }

  /** The listener a connect() to `to` reaches, if any: guest-bound ones first, in bind order. */
  listenerFor(to: Address): LoopbackListener | undefined {
    const reached = [...this.listeners].filter((l) => reaches(l, to));
    return reached.find((l) => l.bound) ?? reached[0];
  }

  /** A new in-container connection from `from` (side 0) to `to` (side 1). */
  pair(family: Family, from: Address, to: Address): StreamPair {
    const pair = new QueuePair(this.nextPair++, family, [from, to]);
    this.pairs.set(pair.id, pair);
    return pair;
  }

  /** A pair of the captured state, for a descriptor being restored. */
  restoredPair(id: number): StreamPair {
    const pair = this.pairs.get(id);
    if (!pair) throw new WasiSetupError(`WASI host: a socket refers to stream pair ${id}, which the state lacks`);
    return pair;
  }

  /** Side `side` of the pair is gone (its last fd closed, or its listener closed before accepting it). */
  release(pair: StreamPair, side: 0 | 1): void {
    pair.release(side);
    if (!pair.open[0] && !pair.open[1]) this.pairs.delete(pair.id);
  }

  capture(): LoopbackState {
    return { pairs: [...this.pairs.values()].map((p) => p.capture()) };
  }
}

/** Whether two bindings of the same port would overlap (Linux's rules without TIME_WAIT). */
function conflicts(a: Binding, b: Binding): boolean {
  if (a.address.port !== b.address.port) return false;
  if (a.reusePort && b.reusePort) return false;
  const [x, y] = [a.address, b.address];
  if (x.family === y.family) return isAny(x) || isAny(y) || x.addr === y.addr;
  // An IPv6 socket bound to :: without IPV6_V6ONLY takes the IPv4 port too.
  const [v6, v6b] = x.family === 'inet6' ? [x, a] : [y, b];
  const v4 = x.family === 'inet' ? x : y;
  if (v6b.v6only) return false;
  if (isAny(v6)) return true;
  const mapped = unmapped(v6);
  return mapped !== undefined && (isAny(v4) || mapped === v4.addr);
}

/** Whether a connect() to `to` reaches `l`. */
function reaches(l: LoopbackListener, to: Address): boolean {
  const at = l.address;
  if (at.port !== to.port) return false;
  if (at.family === to.family) return isAny(at) || at.addr === to.addr;
  if (at.family === 'inet6' && to.family === 'inet') {
    if (l.v6only) return false;
    return isAny(at) || unmapped(at) === to.addr;
  }
  // An IPv6 client of an IPv4 listener, through a v4-mapped address.
  const v4 = unmapped(to);
  return v4 !== undefined && (isAny(at) || at.addr === v4);
}

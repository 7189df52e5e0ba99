import { connect, isIPv4, type Socket } from 'node:net';
import { AllowList } from '../platform/allow-list.js';
import { WriteBatcher } from '../platform/write-batcher.js';
import { decode } from '../protocol/framing.js';
import {
  type Attach,
  dataFrame,
  dropAcknowledged,
  encodeTunnelFrame,
  maxFrameBytes,
  offsetPayload,
  outboundConnBase,
  type Resolution,
  readOffset,
  TunnelFrame,
  TunnelParser,
  TunnelPayload,
} from '../protocol/tunnel.js';
import { Wait } from './descriptors/descriptor.js';
import { nextArrival } from './streams.js';

/** Where a container's client connections come from: the gateway's tunnel endpoint. */
export interface NetworkOptions {
  /** host:port of the gateway's tunnel listener. */
  gateway: string;
  container: string;
  token: string;
  /**
   * The container's epoch, raised by each migration (docs/fencing.md), sent in the Attach: the
   * gateway refuses a copy older than one it attached. Absent: 1 (a container that never moved).
   */
  epoch?: number;
  /** Guest ports the container listens on (one listening fd each). */
  ports: number[];
  /** Where its outgoing connections may go (platform/allow-list.ts); absent: anywhere. */
  allow?: string[];
}

/** One client connection as plain data (bytes as base64). */
export interface ConnectionState {
  conn: number;
  port: number;
  /** The client's IPv4 address and port, where the gateway tells them (getpeername). */
  peer?: { addr: string; port: number };
  accepted: boolean;
  /** Client -> guest: bytes received in all, those not read yet, and whether the client closed. */
  received: number;
  unread: string;
  finReceived: boolean;
  /** The peer reset the connection: the guest reads ECONNRESET (pending) once, then the end. */
  reset?: 'pending' | 'reported';
  /** Guest -> client: bytes sent in all, those the gateway has not acknowledged, and the guest's close. */
  sent: number;
  unacked: string;
  finSent: boolean;
  /** The guest closed its fd: the connection goes once the gateway has everything. */
  closed: boolean;
  /**
   * A connection the guest made to another host (the gateway holds the real one; `peer` is the
   * address it connected to): whether it is established yet, or the errno name it failed with.
   */
  outbound?: 'connecting' | 'connected' | { failed: string };
}

export interface NetworkState extends NetworkOptions {
  conns: ConnectionState[];
  /** The id the guest's next outgoing connection gets (outboundConnBase and up). */
  nextOutbound?: number;
}

/** Bytes of output the gateway has not acknowledged beyond which poll stops reporting the socket writable. */
export const maxUnackedBytes = 4 << 20;

export class Connection {
  unread: Buffer[] = [];
  unacked: Buffer[] = [];
  ackedOut = 0;
  /** nextArrival() of the oldest input not yet read (bytes or the client's end), or of the connection itself until accepted. */
  arrivedAt: number | undefined;
  /** The gateway has the guest's end of stream. */
  finAcked = false;
  constructor(public state: Omit<ConnectionState, 'unread' | 'unacked'>) {}

  get unreadBytes(): number {
    return this.unread.reduce((n, b) => n + b.length, 0);
  }

  get unackedBytes(): number {
    return this.state.sent - this.ackedOut;
  }
}

/**
 * The container's end of the gateway tunnel (see protocol/tunnel.ts), owned by the WASI
 * host: client connections with their unread input and unacknowledged output. It connects
 * lazily, on the guest's first socket call, so a restored guest attaches only once it runs. A
 * capture freezes it (no more input is taken or acknowledged), so the captured state has every
 * byte the gateway was told arrived; the gateway resends the rest to wherever the guest resumes.
 */
export class Network {
  readonly options: NetworkOptions;
  private readonly conns = new Map<number, Connection>();
  private socket: Socket | undefined;
  private frozen = false;
  /** What every wait for the next tunnel event shares (a server polls many sockets at once). */
  private nextEvent: { ready: Promise<void>; wake: () => void } | undefined;
  /** Coalesces the tunnel's frames into one write per turn of the event loop; one per socket. */
  private batcher: WriteBatcher | undefined;
  /** Connections whose received offset (or end) the gateway has not been told yet. */
  private readonly ackDue = new Set<Connection>();
  private nextOutbound: number;
  private readonly allowList: AllowList | undefined;
  /** Host names asked of the gateway and not answered yet, by request id (not captured: a re-run asks again). */
  private readonly resolving = new Map<number, { name: string; answer: (r: Resolution | undefined) => void }>();
  private nextResolve = 1;

  constructor(options: NetworkOptions, state?: NetworkState) {
    this.options = {
      gateway: options.gateway,
      container: options.container,
      token: options.token,
      ...(options.epoch !== undefined ? { epoch: options.epoch } : {}),
      ports: [...options.ports],
      ...(options.allow ? { allow: [...options.allow] } : {}),
    };
    this.allowList = options.allow && new AllowList(options.allow);
    this.nextOutbound = state?.nextOutbound ?? outboundConnBase;
    for (const c of state?.conns ?? []) {
      const { unread, unacked, ...rest } = c;
      const connection = new Connection(rest);
      if (unread) connection.unread.push(Buffer.from(unread, 'base64'));
      if (unread || !c.accepted || c.finReceived) connection.arrivedAt = nextArrival();
      const out = Buffer.from(unacked, 'base64');
      if (out.length) connection.unacked.push(out);
      connection.ackedOut = c.sent - out.length;
      this.conns.set(c.conn, connection);
    }
  }

  /** Called before every socket operation of the guest: it runs, so the tunnel must be live. */
  touch(): void {
    if (this.frozen) {
      this.frozen = false;
      this.socket?.resume();
      this.batcher?.flushSoon();
    }
    if (!this.socket) this.open();
  }

  /** The next connection waiting on `port` to be accepted. */
  accept(port: number): Connection | undefined {
    for (const c of this.conns.values()) {
      if (!c.state.accepted && c.state.port === port && !c.state.closed) {
        c.state.accepted = true;
        if (c.unread.length === 0 && !c.state.finReceived) c.arrivedAt = undefined;
        return c;
      }
    }
    return undefined;
  }

  hasPending(port: number): boolean {
    return this.pendingSince(port) !== undefined;
  }

  /** When the oldest connection waiting on `port` arrived (nextArrival), if one waits. */
  pendingSince(port: number): number | undefined {
    let since: number | undefined;
    for (const c of this.conns.values()) {
      if (c.state.accepted || c.state.port !== port || c.state.closed) continue;
      if (since === undefined || (c.arrivedAt ?? 0) < since) since = c.arrivedAt ?? 0;
    }
    return since;
  }

  connection(conn: number): Connection | undefined {
    return this.conns.get(conn);
  }

  /** Whether the container's allow-list lets it connect to `addr`:`port`. */
  allows(addr: string, port: number): boolean {
    return this.allowList?.allows(addr, port) ?? true;
  }

  /**
   * Resolves a host name as the gateway's node does (the node the connection will come from);
   * undefined when the tunnel closed first, and the caller asks again.
   */
  resolve(name: string): Promise<Resolution | undefined> {
    this.touch();
    const id = this.nextResolve++;
    return new Promise((answer) => {
      this.resolving.set(id, { name, answer });
      this.write(resolveFrame(id, name));
    });
  }

  /**
   * The guest connects to another host: the gateway makes the connection (Connect) and answers
   * Connected or Refused; until then the connection is `connecting`, and output waits in it.
   */
  connect(addr: string, port: number): Connection {
    const c = new Connection({
      conn: this.nextOutbound++,
      port: 0,
      peer: { addr, port },
      accepted: true,
      received: 0,
      finReceived: false,
      sent: 0,
      finSent: false,
      closed: false,
      outbound: 'connecting',
    });
    this.conns.set(c.state.conn, c);
    this.touch();
    this.write(connectFrame(c));
    return c;
  }

  /** Guest output: kept until acknowledged, sent now if the tunnel is up. */
  send(c: Connection, bytes: Buffer): void {
    const offset = c.state.sent;
    c.unacked.push(bytes);
    c.state.sent += bytes.length;
    this.write(...dataFrame(c.state.conn, offset, bytes));
  }

  /** The guest will send no more (shutdown or close). */
  finish(c: Connection): void {
    if (c.state.finSent) return;
    c.state.finSent = true;
    this.write(finFrame(c));
  }

  close(c: Connection): void {
    c.state.closed = true;
    c.unread = [];
    if (typeof c.state.outbound === 'object') {
      this.conns.delete(c.state.conn); // the gateway forgot it when it failed
      return;
    }
    // Closed, not only shut down: the gateway resets a client that sends more (as a kernel would).
    if (c.state.finSent) this.write(finFrame(c));
    else this.finish(c);
    this.collect(c);
  }

  /** A Wait that settles at the next event on the tunnel (data, a connection, an ack). */
  changed(): Wait {
    if (!this.nextEvent) {
      let wake!: () => void;
      const ready = new Promise<void>((resolve) => (wake = resolve));
      this.nextEvent = { ready, wake };
    }
    // Nothing to cancel: the promise settles at the next event whoever still waits on it.
    return new Wait(this.nextEvent.ready);
  }

  capture(): NetworkState {
    this.frozen = true;
    this.socket?.pause();
    return {
      ...this.options,
      nextOutbound: this.nextOutbound,
      conns: [...this.conns.values()].map((c) => ({
        ...c.state,
        unread: Buffer.concat(c.unread).toString('base64'),
        unacked: Buffer.concat(c.unacked).toString('base64'),
      })),
    };
  }

  shutdown(): void {
    this.batcher?.flush(); // handed to the kernel before the socket goes, as an unbatched write would have been
    this.socket?.destroy();
    this.socket = undefined;
    this.batcher = undefined;
    this.notify();
  }

  private open(): void {
    const [host, port] = splitAddress(this.options.gateway);
    const socket = connect({ host, port, noDelay: true });
    this.socket = socket;
    const batcher = new WriteBatcher(socket, () => this.dueAcks());
    this.batcher = batcher;
    const parser = new TunnelParser((type, conn, payload) => this.onFrame(type, conn, payload));
    parser.maxFrameBytes = maxFrameBytes;
    socket.on('connect', () => {
      const attach: Attach = {
        container: this.options.container,
        token: this.options.token,
        epoch: this.options.epoch ?? 1,
        conns: [...this.conns.values()].map((c) => ({
          conn: c.state.conn,
          received: c.state.received,
          finReceived: c.state.finReceived,
        })),
      };
      batcher.write(encodeTunnelFrame(TunnelFrame.Attach, 0, Buffer.from(JSON.stringify(attach))));
      // Outgoing connections not established yet, before any of their output.
      for (const c of this.conns.values()) if (c.state.outbound === 'connecting') batcher.write(connectFrame(c));
      for (const [id, { name }] of this.resolving) batcher.write(resolveFrame(id, name));
      // Whatever the gateway may not have: output from the last acknowledged byte on, and closes.
      for (const c of this.conns.values()) {
        if (c.unacked.length)
          for (const chunk of dataFrame(c.state.conn, c.ackedOut, Buffer.concat(c.unacked))) batcher.write(chunk);
        if (c.state.finSent) batcher.write(finFrame(c));
        this.ackDue.add(c);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        parser.push(chunk);
      } catch {
        // A malformed or oversized frame (a ProtocolError): a broken tunnel is reopened; the
        // offsets make up for it.
        socket.destroy();
      }
    });
    // A lost tunnel is reopened at the guest's next socket call; nothing is lost meanwhile.
    socket.on('close', () => {
      if (this.socket === socket) {
        this.socket = undefined;
        this.batcher = undefined;
      }
      for (const { answer } of this.resolving.values()) answer(undefined);
      this.resolving.clear();
      setTimeout(() => this.notify(), 200).unref();
    });
    socket.on('error', () => undefined);
  }

  private onFrame(type: TunnelFrame, conn: number, payload: Buffer): void {
    if (type === TunnelFrame.Resolved) {
      const resolution = decode(TunnelPayload.Resolved, payload);
      const asked = this.resolving.get(conn);
      if (asked?.name !== resolution.name) return;
      this.resolving.delete(conn);
      asked.answer(resolution);
      return;
    }
    let c = this.conns.get(conn);
    if (type === TunnelFrame.Open) {
      if (!c) {
        const { port, peer } = decode(TunnelPayload.Open, payload);
        c = new Connection({
          conn,
          port,
          ...(peer && isIPv4(peer.addr) ? { peer: { addr: peer.addr, port: peer.port } } : {}),
          accepted: false,
          received: 0,
          finReceived: false,
          sent: 0,
          finSent: false,
          closed: false,
        });
        c.arrivedAt = nextArrival();
        this.conns.set(conn, c);
      }
      this.ackLater(c);
    } else if (type === TunnelFrame.Data && c) {
      const offset = readOffset(payload);
      const bytes = payload.subarray(8);
      const skip = c.state.received - offset;
      if (skip >= 0 && skip < bytes.length) {
        if (!c.state.closed) {
          if (c.unread.length === 0 && c.state.accepted) c.arrivedAt = nextArrival();
          c.unread.push(Buffer.from(bytes.subarray(skip)));
        }
        c.state.received += bytes.length - skip;
      }
      this.ackLater(c);
    } else if (type === TunnelFrame.Fin && c) {
      if (readOffset(payload) === c.state.received) {
        if (payload[8] === 1 && !c.state.finReceived) c.state.reset = 'pending';
        c.state.finReceived = true;
        c.arrivedAt ??= nextArrival();
      }
      this.ackLater(c);
      this.collect(c);
    } else if (type === TunnelFrame.Ack && c) {
      const offset = readOffset(payload);
      if (offset > c.ackedOut) c.ackedOut += dropAcknowledged(c.unacked, offset - c.ackedOut);
      if (payload.length > 8 && payload[8] === 1 && offset === c.state.sent) c.finAcked = true;
      this.collect(c);
    } else if (type === TunnelFrame.Connected && c?.state.outbound === 'connecting') {
      c.state.outbound = 'connected';
    } else if (type === TunnelFrame.Refused && c?.state.outbound === 'connecting') {
      c.state.outbound = { failed: decode(TunnelPayload.Refused, payload).error };
      c.arrivedAt ??= nextArrival();
    } else if (!c && (type === TunnelFrame.Data || type === TunnelFrame.Fin)) {
      // A connection this guest closed already: the client's bytes are taken (and dropped).
      const end = readOffset(payload) + (type === TunnelFrame.Data ? payload.length - 8 : 0);
      this.write(encodeTunnelFrame(TunnelFrame.Ack, conn, offsetPayload(end, type === TunnelFrame.Fin ? 1 : 0)));
    }
    this.notify();
  }

  /** Forgets a connection the guest closed once the gateway acknowledged all of its output. */
  private collect(c: Connection): void {
    if (c.state.closed && c.unackedBytes === 0 && c.finAcked) this.conns.delete(c.state.conn);
  }

  /** The gateway learns how far `c` got with the next batch (input is not acknowledged while frozen). */
  private ackLater(c: Connection): void {
    this.ackDue.add(c);
    if (!this.frozen) this.batcher?.flushSoon();
  }

  /** The acknowledgements due, at the end of a batch; kept while frozen (capture) or closed. */
  private dueAcks(): Buffer[] {
    if (this.frozen) return [];
    const acks: Buffer[] = [];
    for (const c of this.ackDue) {
      if (this.conns.get(c.state.conn) !== c) continue;
      const fin = c.state.finReceived ? 1 : 0;
      acks.push(encodeTunnelFrame(TunnelFrame.Ack, c.state.conn, offsetPayload(c.state.received, fin)));
    }
    this.ackDue.clear();
    return acks;
  }

  /** Sends the frames batched so far (the guest is about to wait for an answer to them). */
  flush(): void {
    this.batcher?.flush();
  }

  /** One frame, whole or in chunks (dataFrame). */
  private write(...chunks: Uint8Array[]): void {
    if (this.socket && !this.socket.connecting) for (const chunk of chunks) this.batcher?.write(chunk);
    // Not connected: the frame's content stays in the connection's state and is resent on attach.
  }

  private notify(): void {
    const event = this.nextEvent;
    this.nextEvent = undefined;
    event?.wake();
  }
}

export function splitAddress(address: string): [string, number] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon), Number(address.slice(colon + 1))];
}

function connectFrame(c: Connection): Buffer {
  const to = { addr: c.state.peer!.addr, port: c.state.peer!.port };
  return encodeTunnelFrame(TunnelFrame.Connect, c.state.conn, Buffer.from(JSON.stringify(to)));
}

/** The guest's end of its stream: flagged 1 once it closed the socket (no more input taken). */
function finFrame(c: Connection): Buffer {
  return encodeTunnelFrame(TunnelFrame.Fin, c.state.conn, offsetPayload(c.state.sent, c.state.closed ? 1 : 0));
}

function resolveFrame(id: number, name: string): Buffer {
  return encodeTunnelFrame(TunnelFrame.Resolve, id, Buffer.from(JSON.stringify({ name })));
}

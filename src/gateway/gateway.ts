import { randomInt, timingSafeEqual } from 'node:crypto';
import { lookup } from 'node:dns';
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import * as v from 'valibot';
import { dispatch, HttpError, hasToken, jsonBody, listenOn, parseBody, reply, serve } from '../platform/http.js';
import { jsonObject, tcpPortSchema } from '../platform/schema.js';
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

export interface GatewayOptions {
  host: string;
  /** Port of the HTTP API (0: any). */
  apiPort: number;
  /** Port containers connect their tunnel to (0: any). */
  tunnelPort: number;
  token: string;
  /** Overrides detachedGraceMs (tests). */
  detachedGraceMs?: number;
  /** Where each attach goes as one JSON line (roam gateway: stdout, its log); none if absent. */
  log?: (line: string) => void;
}

/**
 * POST /v1/ports (docs/gateway-api.yaml), and what the gateway answers about each publication: a
 * published endpoint, whose clients of hostPort reach guest port `port` of container `container`.
 */
const publicationEntries = {
  hostPort: tcpPortSchema,
  container: v.pipe(
    v.string('expected a container ID (12 hex digits)'),
    v.regex(/^[0-9a-f]{12}$/, 'expected a container ID (12 hex digits)'),
  ),
  port: tcpPortSchema,
};
export const PublicationSchema = jsonObject(publicationEntries, 'a JSON object {hostPort, container, port}');
export type Publication = v.InferOutput<typeof PublicationSchema>;

/** GET /v1/ports: every publication, whether its container's tunnel is attached, and its client connections. */
export const PortInfoSchema = jsonObject(
  {
    ...publicationEntries,
    attached: v.boolean('expected true or false'),
    connections: v.pipe(
      v.number('expected a number'),
      v.integer('expected an integer'),
      v.minValue(0, 'expected >= 0'),
    ),
  },
  'a publication {hostPort, container, port, attached, connections}',
);
export type PortInfo = v.InferOutput<typeof PortInfoSchema>;

/**
 * GET /v1/attachments: one tunnel Attach that passed the token check, attached or refused for its
 * epoch (docs/gateway-api.yaml). The soak test reads these to check that no two copies of a
 * container were ever attached with one epoch, and none older after a newer one.
 */
export const AttachRecordSchema = jsonObject(
  {
    /** When it came (ISO 8601). */
    at: v.string('expected a time'),
    container: v.string('expected a container ID'),
    epoch: v.pipe(v.number('expected a number'), v.integer('expected an integer'), v.minValue(1, 'expected >= 1')),
    /** The tunnel's remote address (host:port): which node the copy runs on. */
    remote: v.string('expected an address'),
    outcome: v.picklist(['attached', 'refused'], 'expected attached or refused'),
    reason: v.optional(v.string('expected a reason')),
  },
  'an attach record {at, container, epoch, remote, outcome, reason?}',
);
export type AttachRecord = v.InferOutput<typeof AttachRecordSchema>;

/** The attach log keeps this many records, the newest (the gateway's log has them all). */
export const attachLogLimit = 10_000;

/**
 * Whether an Attach of `epoch` may become its container's tunnel, given the highest epoch attached
 * for that container so far: an older one is a copy a migration left behind (it must never reach
 * clients or peers again); the same one is that copy reconnecting; a newer one took over.
 */
export function admitAttach(
  highest: number | undefined,
  epoch: number,
): { admit: true } | { admit: false; reason: string } {
  if (highest === undefined || epoch >= highest) return { admit: true };
  return { admit: false, reason: `stale epoch ${epoch}: epoch ${highest} attached already` };
}

/** Bytes from one client the container has not acknowledged beyond which the client is not read. */
const maxUnackedIn = 1 << 20;
/**
 * How long connections are held for a container whose tunnel went away. A migration re-attaches
 * within its downtime; a container that exited or died never does, and its clients are then closed.
 */
export const detachedGraceMs = 30_000;
/** How long a container's outgoing connection may take to be established before ETIMEDOUT. */
export const connectTimeoutMs = 30_000;

/**
 * One connection the gateway holds for a container: a client's of a published port, or one the
 * guest opened to another host (outgoing: `publication` undefined), for as long as it is open.
 */
/** A Fin to the container: where the client's stream ended, and whether by a reset. */
const finPayload = (c: ClientConnection) => offsetPayload(c.read, c.clientReset ? 1 : 0);

class ClientConnection {
  /** Client bytes from `acked` on (the container may not have them yet). */
  pending: Buffer[] = [];
  acked = 0;
  /** Bytes read from the client in all; the client closed its side. */
  read = 0;
  clientEnded = false;
  /** The peer ended it with a reset (RST), not a close: the guest is told so. */
  clientReset = false;
  containerHasEnd = false;
  /** The container acknowledged the connection at least once (so it knows it, or closed it). */
  known = false;
  /** Bytes of the container's output written to the client; the container finished its side. */
  delivered = 0;
  containerEnded = false;
  /** The guest closed its socket: client bytes that still come get a reset (RST), as from a kernel. */
  containerClosed = false;
  /** An outgoing connection not established yet. */
  connecting = false;

  constructor(
    readonly conn: number,
    readonly container: string,
    readonly publication: Publication | undefined,
    readonly socket: Socket,
  ) {}

  get pendingBytes(): number {
    return this.read - this.acked;
  }
}

/** The Open frame's payload: the guest port, and the client's address for the guest's getpeername. */
function openPayload(c: ClientConnection, port: number): Buffer {
  const { remoteAddress: addr, remotePort: remote } = c.socket;
  const peer = addr !== undefined && remote !== undefined ? { peer: { addr, port: remote } } : {};
  return Buffer.from(JSON.stringify({ port, ...peer }));
}

/**
 * A container's tunnel as the gateway writes to it: frames go out in batches (one write per turn
 * of the event loop), and the acknowledgements of the container's output once per batch and
 * connection, with the latest offset.
 */
class Tunnel {
  private readonly batcher: WriteBatcher;
  private readonly ackDue = new Set<ClientConnection>();

  constructor(readonly socket: Socket) {
    this.batcher = new WriteBatcher(socket, () => this.dueAcks());
  }

  /** One frame, whole or in chunks (dataFrame). */
  send(...chunks: Uint8Array[]): void {
    for (const chunk of chunks) this.batcher.write(chunk);
  }

  ackLater(c: ClientConnection): void {
    this.ackDue.add(c);
    this.batcher.flushSoon();
  }

  private dueAcks(): Buffer[] {
    const acks = [...this.ackDue].map((c) =>
      encodeTunnelFrame(TunnelFrame.Ack, c.conn, offsetPayload(c.delivered, c.containerEnded ? 1 : 0)),
    );
    this.ackDue.clear();
    return acks;
  }
}

/**
 * Owns the public endpoints of a cluster's containers. Clients connect here; their bytes go
 * through the tunnel of the container, wherever it runs. When the tunnel goes (the container
 * migrates) the connections are held, client bytes buffered, and when the container attaches from
 * its new node each side resends exactly what the other lacks (see protocol/tunnel.ts).
 */
export class Gateway {
  private readonly publications = new Map<number, { publication: Publication; server: Server }>();
  private readonly tunnels = new Map<string, Tunnel>();
  /** The highest epoch attached per container, kept after its tunnel goes so that an older copy stays out. */
  private readonly epochs = new Map<string, number>();
  private readonly attachLog: AttachRecord[] = [];
  /** By connKey: outgoing connections' ids are the containers' own, so two containers may use the same. */
  private readonly conns = new Map<string, ClientConnection>();
  /** Connection ids start at a random point, so that a restarted gateway does not reuse live ones. */
  private nextConn = randomInt(1, 2 ** 30);
  private api: HttpServer | undefined;
  private tunnelServer: Server | undefined;

  constructor(private readonly options: GatewayOptions) {}

  /** Starts the API and the tunnel listener; resolves with their addresses. */
  async listen(): Promise<{ url: string; tunnel: string }> {
    this.api = createHttpServer(serve((req, res) => this.handle(req, res)));
    this.tunnelServer = createServer({ noDelay: true }, (socket) => this.onTunnel(socket));
    const apiPort = await listenOn(this.api, this.options.apiPort, this.options.host);
    const tunnelPort = await listenOn(this.tunnelServer, this.options.tunnelPort, this.options.host);
    return { url: `http://${this.options.host}:${apiPort}`, tunnel: `${this.options.host}:${tunnelPort}` };
  }

  close(): void {
    for (const { server } of this.publications.values()) server.close();
    for (const c of this.conns.values()) c.socket.destroy();
    for (const t of this.tunnels.values()) t.socket.destroy();
    this.api?.close();
    this.tunnelServer?.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!hasToken(req, this.options.token))
      throw new HttpError(401, 'missing or wrong token (send Authorization: Bearer TOKEN)');
    const path = new URL(req.url ?? '/', 'http://gateway').pathname;
    const handled = await dispatch(`${req.method} ${path}`, [
      ['GET /v1/ports', () => reply(res, 200, this.list())],
      ['GET /v1/attachments', () => reply(res, 200, this.attachLog)],
      [
        'POST /v1/ports',
        async () => reply(res, 201, await this.publish(parseBody(PublicationSchema, await jsonBody(req)))),
      ],
      [/^DELETE \/v1\/containers\/([0-9a-f]{12})$/, ([id]) => reply(res, 200, this.unpublishContainer(id!))],
    ]);
    if (handled) return;
    throw new HttpError(404, `no such endpoint: ${req.method} ${path}`);
  }

  private list(): PortInfo[] {
    return [...this.publications.values()].map(({ publication: p }) => ({
      ...p,
      attached: this.tunnels.has(p.container),
      connections: [...this.conns.values()].filter((c) => c.publication === p).length,
    }));
  }

  private async publish(request: Publication): Promise<Publication> {
    if (this.publications.has(request.hostPort))
      throw new HttpError(
        409,
        `port ${request.hostPort} is already published (for container ${this.publications.get(request.hostPort)!.publication.container})`,
      );
    const publication: Publication = { hostPort: request.hostPort, container: request.container, port: request.port };
    // Half-open: a client that finished sending still gets the rest of the answer.
    const server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.onClient(publication, socket));
    try {
      await listenOn(server, publication.hostPort, this.options.host);
    } catch (error) {
      throw new HttpError(
        409,
        `cannot listen on ${this.options.host}:${publication.hostPort}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    this.publications.set(publication.hostPort, { publication, server });
    return publication;
  }

  private unpublishContainer(container: string): Publication[] {
    const removed: Publication[] = [];
    for (const [hostPort, { publication, server }] of this.publications) {
      if (publication.container !== container) continue;
      server.close();
      this.publications.delete(hostPort);
      removed.push(publication);
    }
    for (const c of this.conns.values()) if (c.container === container) this.drop(c);
    this.tunnels.get(container)?.socket.destroy();
    return removed;
  }

  private onClient(publication: Publication, socket: Socket): void {
    const c = new ClientConnection(this.nextConn++, publication.container, publication, socket);
    this.conns.set(connKey(c.container, c.conn), c);
    this.toContainer(c, TunnelFrame.Open, openPayload(c, publication.port));
    this.relay(c);
  }

  /**
   * The guest connects out: the gateway makes the connection and holds it like a client's, so the
   * peer sees one connection from this address wherever the guest runs. A Connect for a
   * connection the gateway has (sent again after an attach) only repeats Connected.
   */
  private connectOut(container: string, conn: number, to: { addr: string; port: number }): void {
    const known = this.conns.get(connKey(container, conn));
    if (known) {
      if (!known.connecting) this.toContainer(known, TunnelFrame.Connected);
      return;
    }
    const socket = connect({ host: to.addr, port: to.port, noDelay: true, allowHalfOpen: true });
    const c = new ClientConnection(conn, container, undefined, socket);
    c.connecting = true;
    this.conns.set(connKey(container, conn), c);
    socket.setTimeout(connectTimeoutMs, () => {
      if (c.connecting) socket.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }));
    });
    socket.once('connect', () => {
      c.connecting = false;
      socket.setTimeout(0);
      this.toContainer(c, TunnelFrame.Connected);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (!c.connecting) return;
      this.conns.delete(connKey(container, conn));
      const refused = { error: (error.code ?? 'ECONNREFUSED').slice(0, 32) };
      this.toContainer(c, TunnelFrame.Refused, Buffer.from(JSON.stringify(refused)));
    });
    this.relay(c);
  }

  /**
   * A guest's getaddrinfo: the name is resolved here, where its connections will come from. The
   * answer goes to the container's tunnel of the moment; one lost in a move is asked for again.
   */
  private resolve(container: string, id: number, name: string): void {
    lookup(name, { all: true }, (error, found) => {
      const addresses = (found ?? [])
        .slice(0, 64)
        .map((a) => ({ family: a.family === 6 ? (6 as const) : (4 as const), addr: a.address }));
      const answer: Resolution = error
        ? { name, error: (error.code ?? 'ENOTFOUND').slice(0, 32) }
        : { name, addresses };
      this.tunnels
        .get(container)
        ?.send(encodeTunnelFrame(TunnelFrame.Resolved, id, Buffer.from(JSON.stringify(answer))));
    });
  }

  /** Client bytes go to the container as they come; the client's end is the stream's end. */
  private relay(c: ClientConnection): void {
    const socket = c.socket;
    socket.on('data', (chunk: Buffer) => {
      if (c.containerClosed) {
        socket.resetAndDestroy();
        return;
      }
      const offset = c.read;
      c.pending.push(chunk);
      c.read += chunk.length;
      this.tunnels.get(c.container)?.send(...dataFrame(c.conn, offset, chunk));
      if (c.pendingBytes > maxUnackedIn) socket.pause();
    });
    const ended = () => {
      if (c.clientEnded || this.conns.get(connKey(c.container, c.conn)) !== c) return;
      c.clientEnded = true;
      this.toContainer(c, TunnelFrame.Fin, finPayload(c));
      this.maybeForget(c);
    };
    socket.on('end', ended);
    socket.on('close', ended);
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET') c.clientReset = true;
    });
  }

  /** Sends to the container if its tunnel is up; otherwise the state above is resent on attach. */
  private toContainer(c: ClientConnection, type: TunnelFrame, payload?: Buffer): void {
    this.tunnels.get(c.container)?.send(encodeTunnelFrame(type, c.conn, payload));
  }

  private onTunnel(socket: Socket): void {
    let container: string | undefined;
    // Until the Attach proved the token, frames stay small.
    const parser = new TunnelParser((type, conn, payload) => {
      if (container === undefined) {
        if (type !== TunnelFrame.Attach) return socket.destroy();
        // A malformed Attach throws out of push(): the socket is destroyed below.
        const attach = decode(TunnelPayload.Attach, payload);
        if (!sameToken(attach.token, this.options.token)) return socket.destroy();
        const epoch = attach.epoch ?? 1;
        const admitted = admitAttach(this.epochs.get(attach.container), epoch);
        this.record({
          at: new Date().toISOString(),
          container: attach.container,
          epoch,
          remote: `${socket.remoteAddress}:${socket.remotePort}`,
          ...(admitted.admit
            ? { outcome: 'attached' as const }
            : { outcome: 'refused' as const, reason: admitted.reason }),
        });
        // No answer: a refused copy sees its tunnel close, as for a wrong token.
        if (!admitted.admit) return socket.destroy();
        this.epochs.set(attach.container, epoch);
        parser.maxFrameBytes = maxFrameBytes;
        container = attach.container;
        this.attach(attach, socket);
        return;
      }
      this.fromContainer(container, type, conn, payload);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        parser.push(chunk);
      } catch {
        socket.destroy();
      }
    });
    socket.on('close', () => {
      if (container === undefined || this.tunnels.get(container)?.socket !== socket) return;
      this.tunnels.delete(container);
      const gone = container;
      setTimeout(() => {
        if (this.tunnels.has(gone)) return;
        for (const c of this.conns.values()) if (c.container === gone) this.drop(c, true);
      }, this.options.detachedGraceMs ?? detachedGraceMs).unref();
    });
    socket.on('error', () => undefined);
  }

  private record(entry: AttachRecord): void {
    this.attachLog.push(entry);
    if (this.attachLog.length > attachLogLimit) this.attachLog.splice(0, this.attachLog.length - attachLogLimit);
    this.options.log?.(JSON.stringify({ event: 'attach', ...entry }));
  }

  /** A container (re)connects: from now on its tunnel is this one, and each side catches up. */
  private attach(attach: Attach, socket: Socket): void {
    const previous = this.tunnels.get(attach.container);
    const tunnel = new Tunnel(socket);
    this.tunnels.set(attach.container, tunnel);
    previous?.socket.destroy();
    const known = new Map(attach.conns.map((k) => [k.conn, k]));
    for (const c of this.conns.values()) {
      if (c.container !== attach.container) continue;
      const view = known.get(c.conn);
      if (!view) {
        // Never acknowledged: the container never saw it, so it all goes again. Acknowledged
        // but unknown (or an outgoing one it does not have): the container closed it already.
        if (c.known || !c.publication) {
          this.drop(c);
          continue;
        }
        tunnel.send(encodeTunnelFrame(TunnelFrame.Open, c.conn, openPayload(c, c.publication.port)));
        this.acknowledged(c, c.acked, false);
        if (c.pending.length) tunnel.send(...dataFrame(c.conn, c.acked, Buffer.concat(c.pending)));
        if (c.clientEnded) tunnel.send(encodeTunnelFrame(TunnelFrame.Fin, c.conn, finPayload(c)));
        continue;
      }
      if (!c.publication && !c.connecting) tunnel.send(encodeTunnelFrame(TunnelFrame.Connected, c.conn));
      this.acknowledged(c, view.received, view.finReceived);
      if (c.pending.length) tunnel.send(...dataFrame(c.conn, c.acked, Buffer.concat(c.pending)));
      if (c.clientEnded && !view.finReceived) tunnel.send(encodeTunnelFrame(TunnelFrame.Fin, c.conn, finPayload(c)));
    }
  }

  private fromContainer(container: string, type: TunnelFrame, conn: number, payload: Buffer): void {
    if (type === TunnelFrame.Resolve) {
      this.resolve(container, conn, decode(TunnelPayload.Resolve, payload).name);
      return;
    }
    if (type === TunnelFrame.Connect) {
      if (conn < outboundConnBase) return;
      this.connectOut(container, conn, decode(TunnelPayload.Connect, payload));
      return;
    }
    const c = this.conns.get(connKey(container, conn));
    if (!c) return;
    if (type === TunnelFrame.Data) {
      const offset = readOffset(payload);
      const bytes = payload.subarray(8);
      const skip = c.delivered - offset;
      // Bytes before `delivered` reached the client already (resent after a migration): dropped.
      if (skip >= 0 && skip < bytes.length) {
        c.socket.write(bytes.subarray(skip));
        c.delivered += bytes.length - skip;
      }
      this.tunnels.get(c.container)?.ackLater(c);
    } else if (type === TunnelFrame.Fin) {
      if (readOffset(payload) === c.delivered && !c.containerEnded) {
        c.containerEnded = true;
        c.socket.end();
      }
      if (c.containerEnded && payload[8] === 1) c.containerClosed = true;
      this.tunnels.get(c.container)?.ackLater(c);
      this.maybeForget(c);
    } else if (type === TunnelFrame.Ack) {
      c.known = true;
      const fin = payload.length > 8 && payload[8] === 1;
      this.acknowledged(c, readOffset(payload), fin);
      this.maybeForget(c);
    }
  }

  /** The container has the client's bytes up to `offset` (and its end, if `fin`): drop them here. */
  private acknowledged(c: ClientConnection, offset: number, fin: boolean): void {
    if (offset > c.acked) c.acked += dropAcknowledged(c.pending, offset - c.acked);
    if (fin) c.containerHasEnd = true;
    if (c.pendingBytes <= maxUnackedIn && c.socket.isPaused()) c.socket.resume();
  }

  private maybeForget(c: ClientConnection): void {
    if (c.containerEnded && c.clientEnded && c.containerHasEnd) this.conns.delete(connKey(c.container, c.conn));
  }

  /** Closes a client connection: gracefully (`end`, after what was written) or at once. */
  private drop(c: ClientConnection, end = false): void {
    if (end) c.socket.end();
    else c.socket.destroy();
    this.conns.delete(connKey(c.container, c.conn));
  }
}

const connKey = (container: string, conn: number) => `${container}/${conn}`;

function sameToken(given: string, expected: string): boolean {
  const [a, b] = [Buffer.from(given), Buffer.from(expected)];
  return a.length === b.length && timingSafeEqual(a, b);
}

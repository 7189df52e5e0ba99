import * as v from 'valibot';
import { type FrameLayout, FrameSplitter, frameSchema, MalformedFrameError } from './framing.js';

/**
 * The tunnel between the gateway and a container: one TCP connection carrying every client
 * connection of the container, as frames [u8 type][u32 LE conn][u32 LE length][payload]
 * (framing.ts); JSON payloads are checked against TunnelPayload as they are decoded. Byte
 * streams carry absolute offsets and are acknowledged, so that after a migration the gateway and
 * the container's new home resend exactly what the other side lacks: no byte lost or doubled.
 */
export enum TunnelFrame {
  /** container -> gateway, conn 0: JSON Attach. */
  Attach = 1,
  /** gateway -> container: a client connected to guest port (JSON {port, peer?: {addr, port}}). */
  Open,
  /** either way: [u64 LE offset][bytes] of the connection's stream in that direction. */
  Data,
  /** either way: [u64 LE offset][u8 fin]: everything before offset (and the end, if fin) arrived. */
  Ack,
  /**
   * either way: [u64 LE offset][u8 flag, optional]: the stream ends at offset (client closed, or
   * guest shut down). Flag 1 from the gateway: the peer reset the connection (the guest reads
   * ECONNRESET once it has every byte before); from the container: the guest closed the socket,
   * not only its output, so more client bytes get a reset, as from a kernel.
   */
  Fin,
  /**
   * container -> gateway: the guest connects out (JSON {addr, port}); conn is the container's own
   * id (outboundConnBase and up). Sent again after each attach until Connected or Refused.
   */
  Connect,
  /** gateway -> container: the outgoing connection conn is established; from here on it is like a client's. */
  Connected,
  /** gateway -> container: the outgoing connection conn failed (JSON {error: 'ECONNREFUSED'...}); the gateway forgot it. */
  Refused,
  /**
   * container -> gateway: resolve a host name as the gateway's node does (JSON {name}); conn is
   * the request's id. Sent again after each attach until Resolved.
   */
  Resolve,
  /** gateway -> container: the answer to Resolve conn (JSON {name, addresses} or {name, error: 'ENOTFOUND'...}). */
  Resolved,
}

/** Outgoing connections' ids, chosen by the container: above every id the gateway gives a client. */
export const outboundConnBase = 0x80000000;

const count = v.pipe(v.number(), v.integer(), v.minValue(0));
const hostName = v.pipe(v.string(), v.minLength(1), v.maxLength(253));

/** The JSON payloads of the tunnel's frames, by frame; decode(TunnelPayload.X, payload) checks one. */
export const TunnelPayload = {
  /** What a container tells the gateway when it (re)connects: the connections it knows and how far. */
  Attach: frameSchema(
    'Attach',
    v.object({
      container: v.string(),
      /** Token of the cluster: the gateway accepts tunnels from its own containers only. */
      token: v.string(),
      /**
       * The container's epoch (docs/fencing.md): the gateway refuses an Attach of an epoch lower
       * than the highest it attached for this container. Absent (a roam from before epochs): 1.
       */
      epoch: v.optional(v.pipe(count, v.minValue(1))),
      conns: v.array(
        v.object({ conn: v.pipe(count, v.maxValue(0xffffffff)), received: count, finReceived: v.boolean() }),
      ),
    }),
  ),
  Open: frameSchema(
    'Open',
    v.object({
      port: v.pipe(count, v.maxValue(65535)),
      /** The client's address as the gateway sees it (getpeername in the guest); absent from older gateways. */
      peer: v.optional(v.object({ addr: v.pipe(v.string(), v.maxLength(64)), port: v.pipe(count, v.maxValue(65535)) })),
    }),
  ),
  Connect: frameSchema(
    'Connect',
    v.object({
      /** An IP address, or a host name the gateway's node resolves. */
      addr: v.pipe(v.string(), v.minLength(1), v.maxLength(255)),
      port: v.pipe(count, v.minValue(1), v.maxValue(65535)),
    }),
  ),
  Refused: frameSchema('Refused', v.object({ error: v.pipe(v.string(), v.maxLength(32)) })),
  Resolve: frameSchema('Resolve', v.object({ name: hostName })),
  Resolved: frameSchema(
    'Resolved',
    v.object({
      /** The name asked: an answer to an id reused since (after a move) is told apart by it. */
      name: hostName,
      addresses: v.optional(
        v.pipe(
          v.array(v.object({ family: v.picklist([4, 6]), addr: v.pipe(v.string(), v.maxLength(64)) })),
          v.maxLength(64),
        ),
      ),
      error: v.optional(v.pipe(v.string(), v.maxLength(32))),
    }),
  ),
};

export type Resolution = v.InferOutput<typeof TunnelPayload.Resolved>;

export type Attach = v.InferOutput<typeof TunnelPayload.Attach>;

export const tunnelLayout: FrameLayout = { headerBytes: 9, lengthAt: 5 };

export function encodeTunnelFrame(type: TunnelFrame, conn: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const { headerBytes, lengthAt } = tunnelLayout;
  const frame = Buffer.allocUnsafe(headerBytes + payload.length);
  frame.writeUInt8(type, 0);
  frame.writeUInt32LE(conn, 1);
  frame.writeUInt32LE(payload.length, lengthAt);
  frame.set(payload, headerBytes);
  return frame;
}

/**
 * A Data frame as two chunks for a vectored write: its head (with the offset) and the bytes
 * themselves, uncopied. On the wire the same as encodeTunnelFrame(Data, conn, offsetPayload(offset,
 * bytes)), which copies the bytes twice.
 */
export function dataFrame(conn: number, offset: number, bytes: Uint8Array): [Buffer, Uint8Array] {
  const { headerBytes, lengthAt } = tunnelLayout;
  const head = Buffer.allocUnsafe(headerBytes + 8);
  head.writeUInt8(TunnelFrame.Data, 0);
  head.writeUInt32LE(conn, 1);
  head.writeUInt32LE(8 + bytes.length, lengthAt);
  head.writeBigUInt64LE(BigInt(offset), headerBytes);
  return [head, bytes];
}

export function offsetPayload(offset: number, extra: Uint8Array | number = new Uint8Array(0)): Buffer {
  const tail = typeof extra === 'number' ? Uint8Array.of(extra) : extra;
  const out = Buffer.allocUnsafe(8 + tail.length);
  out.writeBigUInt64LE(BigInt(offset), 0);
  out.set(tail, 8);
  return out;
}

/** The u64 LE offset that Data, Ack and Fin payloads begin with. */
export function readOffset(payload: Buffer): number {
  if (payload.length < 8) throw new MalformedFrameError(`tunnel: ${payload.length} bytes hold no stream offset`);
  return Number(payload.readBigUInt64LE(0));
}

/** The largest frame accepted once a tunnel is attached (a guest's single send, say). */
export const maxFrameBytes = 64 << 20;

/** Splits a byte stream into tunnel frames; chunks are joined only once a whole frame is there. */
export class TunnelParser {
  private readonly splitter: FrameSplitter;

  constructor(onFrame: (type: TunnelFrame, conn: number, payload: Buffer) => void) {
    this.splitter = new FrameSplitter(
      // Small until the peer is known.
      { layout: tunnelLayout, channel: 'tunnel', maxPayload: 64 << 10 },
      (header, payload) => onFrame(header[0] as TunnelFrame, header.readUInt32LE(1), payload),
    );
  }

  /** Payloads larger than this are refused. */
  get maxFrameBytes(): number {
    return this.splitter.maxPayload;
  }

  set maxFrameBytes(bytes: number) {
    this.splitter.maxPayload = bytes;
  }

  /**
   * Throws a FrameTooLargeError (a ProtocolError) on a frame larger than allowed, and what onFrame
   * threw: the connection is then unusable.
   */
  push(chunk: Buffer): void {
    this.splitter.push(chunk);
  }
}

/**
 * Drops up to `count` bytes from the front of a queue of unacknowledged buffers (the peer has
 * them now); returns how many it dropped.
 */
export function dropAcknowledged(queue: Buffer[], count: number): number {
  let dropped = 0;
  while (dropped < count && queue.length) {
    const head = queue[0]!;
    const n = Math.min(head.length, count - dropped);
    if (n === head.length) queue.shift();
    else queue[0] = head.subarray(n);
    dropped += n;
  }
  return dropped;
}

/**
 * The tunnel between the gateway and a container: one TCP connection carrying every client
 * connection of the container, as frames [u8 type][u32 LE conn][u32 LE length][payload]. Byte
 * streams carry absolute offsets and are acknowledged, so that after a migration the gateway and
 * the container's new home resend exactly what the other side lacks: no byte lost or doubled.
 */
export enum TunnelFrame {
  /** container -> gateway, conn 0: JSON Attach. */
  Attach = 1,
  /** gateway -> container: a client connected to guest port (JSON {port}). */
  Open,
  /** either way: [u64 LE offset][bytes] of the connection's stream in that direction. */
  Data,
  /** either way: [u64 LE offset][u8 fin]: everything before offset (and the end, if fin) arrived. */
  Ack,
  /** either way: [u64 LE offset]: the stream ends at offset (client closed, or guest shut down). */
  Fin,
}

/** What a container tells the gateway when it (re)connects: the connections it knows and how far. */
export interface Attach {
  container: string;
  /** Token of the cluster: the gateway accepts tunnels from its own containers only. */
  token: string;
  conns: { conn: number; received: number; finReceived: boolean }[];
}

const tunnelHeaderBytes = 9;

export function encodeTunnelFrame(type: TunnelFrame, conn: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const frame = Buffer.allocUnsafe(tunnelHeaderBytes + payload.length);
  frame.writeUInt8(type, 0);
  frame.writeUInt32LE(conn, 1);
  frame.writeUInt32LE(payload.length, 5);
  frame.set(payload, tunnelHeaderBytes);
  return frame;
}

export function offsetPayload(offset: number, extra: Uint8Array | number = new Uint8Array(0)): Buffer {
  const tail = typeof extra === 'number' ? Uint8Array.of(extra) : extra;
  const out = Buffer.allocUnsafe(8 + tail.length);
  out.writeBigUInt64LE(BigInt(offset), 0);
  out.set(tail, 8);
  return out;
}

export function readOffset(payload: Buffer): number {
  return Number(payload.readBigUInt64LE(0));
}

/** The largest frame accepted once a tunnel is attached (a guest's single send, say). */
export const maxFrameBytes = 64 << 20;

export class TunnelError extends Error {}

/** Splits a byte stream into tunnel frames; chunks are joined only once a whole frame is there. */
export class TunnelParser {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Frames larger than this are refused (small until the peer is known). */
  maxFrameBytes = 64 << 10;

  constructor(private readonly onFrame: (type: TunnelFrame, conn: number, payload: Buffer) => void) {}

  /** Throws a TunnelError on a frame larger than allowed: the connection is then unusable. */
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= tunnelHeaderBytes) {
      if (this.chunks[0]!.length < tunnelHeaderBytes) this.chunks = [Buffer.concat(this.chunks)];
      const head = this.chunks[0]!;
      const length = head.readUInt32LE(5);
      if (length > this.maxFrameBytes) throw new TunnelError(`tunnel frame of ${length} bytes refused`);
      const total = tunnelHeaderBytes + length;
      if (this.buffered < total) return;
      const frame = head.length >= total ? head : Buffer.concat(this.chunks);
      this.onFrame(frame.readUInt8(0) as TunnelFrame, frame.readUInt32LE(1), frame.subarray(tunnelHeaderBytes, total));
      const rest = frame.subarray(total);
      this.chunks = head.length >= total ? [rest, ...this.chunks.slice(1)] : [rest];
      if (this.chunks[0]!.length === 0) this.chunks.shift();
      this.buffered -= total;
    }
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

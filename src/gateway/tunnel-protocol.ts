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

export const tunnelHeaderBytes = 9;

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

/** Splits a byte stream into tunnel frames. */
export class TunnelParser {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (type: TunnelFrame, conn: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let at = 0;
    while (this.pending.length - at >= tunnelHeaderBytes) {
      const length = this.pending.readUInt32LE(at + 5);
      if (this.pending.length - at < tunnelHeaderBytes + length) break;
      const type = this.pending.readUInt8(at) as TunnelFrame;
      const conn = this.pending.readUInt32LE(at + 1);
      this.onFrame(type, conn, this.pending.subarray(at + tunnelHeaderBytes, at + tunnelHeaderBytes + length));
      at += tunnelHeaderBytes + length;
    }
    this.pending = this.pending.subarray(at);
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

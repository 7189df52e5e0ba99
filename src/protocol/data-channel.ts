import type { Socket } from 'node:net';
import { wasmPageBytes } from '../build/module-binary.js';

/**
 * The data channel of a migration: one TCP connection from the source container process to the
 * destination's, carrying frames of [u8 type][u32 LE payload length][payload]. Control frames
 * carry JSON; PAGES, FILE and LOG frames carry bytes.
 */
export enum Frame {
  /** s->d {ticket}: proves the source was sent by the destination's agent. */
  Hello = 1,
  /** d->s {}: module compiled, memory ready for pages. */
  Ready,
  /** s->d {round, memoryBytes}: a round of pages follows. */
  Round,
  /** s->d [u32 LE offset][bytes]: memory contents at that offset. */
  Pages,
  /** s->d {sha256, bytes, final}: checksum of the round's page bytes (offsets included); the final (stop-copy) round is not acknowledged. */
  RoundEnd,
  /** d->s {round}: the round arrived intact. */
  RoundAck,
  /** s->d [u32 LE header length][FileHeader JSON][bytes]: a piece of a file in a preopened directory. */
  File,
  /** s->d {dir, path}: the file or directory is gone on the source. */
  FileDelete,
  /** s->d bytes: the container's log so far. */
  Log,
  /** s->d {state}: the stopped guest's state; all pages, files and log were sent. */
  State,
  /**
   * d->s {restoreMs, sinceResumeMs}: the guest runs on the destination, restored from State at once
   * (sending State commits the source to this destination); the source drops its copy.
   * sinceResumeMs: how long before this frame the guest resumed (taken off the downtime).
   */
  Running = 13,
  /** s->d {reason}: give up; the source keeps the container. */
  Abort,
  /** d->s {message}: the destination cannot go on. */
  Error,
  /**
   * s->d [u32 LE memory size in 64 KiB pages][u32 LE first, end granule pairs]: post-copy; the
   * guest's memory size and the 64 KiB granules the destination lacks, to fetch over the page
   * channel (post-copy.ts) once it runs. In pages and granules, so that 4 GiB fits.
   */
  PostCopy,
  /** d->s {stats}: after Running, in post-copy: every page arrived, the source may drop its copy. */
  Resident,
}

export interface FileHeader {
  /** Index of the preopened directory. */
  dir: number;
  /** Path relative to it, '/'-separated. */
  path: string;
  kind: 'file' | 'directory' | 'symlink';
  mode: number;
  /** Whole file size (kind 'file'); pieces of one file arrive in order, at increasing offsets. */
  size: number;
  offset: number;
  /** Symlink target (kind 'symlink'). */
  target?: string;
}

export class ProtocolError extends Error {}

/** The peer's own Error frame: it gave up (a destination that sends one never ran the guest). */
export class PeerError extends ProtocolError {}

const headerBytes = 5;
/** Payload of one PAGES frame at most; bigger ranges are split. */
export const maxPagesPayload = 1 << 20;

function encodeFrame(type: Frame, payload: Uint8Array | object = new Uint8Array(0)): Buffer[] {
  const body = payload instanceof Uint8Array ? payload : Buffer.from(JSON.stringify(payload));
  const header = Buffer.allocUnsafe(headerBytes);
  header.writeUInt8(type, 0);
  header.writeUInt32LE(body.length, 1);
  return [header, body as Buffer];
}

/** Writes frames to a socket, resolving flush() once everything written so far reached the kernel. */
export class FrameWriter {
  private lastWrite: Promise<void> = Promise.resolve();

  constructor(private readonly socket: Socket) {}

  send(type: Frame, payload?: Uint8Array | object): void {
    this.write(encodeFrame(type, payload));
  }

  /** One frame whose payload is the concatenation of `parts` (written without copying them). */
  sendParts(type: Frame, parts: Uint8Array[]): void {
    const header = Buffer.allocUnsafe(headerBytes);
    header.writeUInt8(type, 0);
    header.writeUInt32LE(
      parts.reduce((n, p) => n + p.length, 0),
      1,
    );
    this.write([header, ...parts]);
  }

  private write(parts: Uint8Array[]): void {
    for (const part of parts) {
      if (part.length === 0) continue;
      const written = new Promise<void>((resolve, reject) =>
        this.socket.write(part, (error) => (error ? reject(error) : resolve())),
      );
      written.catch(() => undefined); // reported by flush(), or by the reader's side of the socket
      this.lastWrite = written;
    }
  }

  /** Waits for the socket to take what was sent; also applies backpressure. */
  async flush(): Promise<void> {
    await this.lastWrite;
  }
}

export interface ReceivedFrame {
  type: Frame;
  payload: Buffer;
}

/**
 * Takes PAGES frames as their bytes arrive, instead of queueing whole frames: no copy into a
 * frame buffer. Called in stream order, ahead of frames still queued for next(); the protocol
 * makes that safe (pages of a round are sent only after the previous round was acknowledged).
 */
export interface PageSink {
  /**
   * A PAGES frame begins: its 4-byte offset field, as sent (it is part of the round's checksum),
   * and how many bytes of memory follow.
   */
  begin(offsetField: Buffer, length: number): void;
  /** Bytes of the current frame, for memory at `offset`. */
  data(offset: number, bytes: Buffer): void;
}

/**
 * Splits the incoming byte stream into frames, delivered in order to one consumer through next().
 * End of stream or a socket error make next() reject with a ProtocolError.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly frames: ReceivedFrame[] = [];
  private failure: Error | undefined;
  private waiter: (() => void) | undefined;
  /** The PAGES frame being streamed to the sink: where its next bytes go, and how many are left. */
  private streaming: { offset: number; remaining: number } | undefined;

  constructor(
    socket: Socket,
    private readonly pageSink?: PageSink,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      try {
        this.split();
      } catch (error) {
        // The page sink refused bytes (out of bounds...): nothing further on this connection counts.
        this.fail(error as Error);
        socket.destroy();
      }
    });
    socket.on('end', () => this.fail(new ProtocolError('the peer closed the data channel')));
    socket.on('close', () => this.fail(new ProtocolError('the data channel closed')));
    socket.on('error', (error) => this.fail(new ProtocolError(`data channel: ${error.message}`)));
  }

  async next(): Promise<ReceivedFrame> {
    for (;;) {
      const frame = this.frames.shift();
      if (frame) return frame;
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  /** The next frame, which must be of `type` (an Error frame from the peer becomes a PeerError). */
  async expect(type: Frame): Promise<Buffer> {
    const frame = await this.next();
    if (frame.type === type) return frame.payload;
    if (frame.type === Frame.Error) throw new PeerError(json<{ message: string }>(frame.payload).message);
    throw new ProtocolError(`expected ${Frame[type]}, got ${Frame[frame.type] ?? frame.type}`);
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  private split(): void {
    for (;;) {
      if (this.streaming) {
        if (this.buffered === 0) break;
        const bytes = this.take(Math.min(this.chunks[0]!.length, this.streaming.remaining));
        this.pageSink!.data(this.streaming.offset, bytes);
        this.streaming.offset += bytes.length;
        this.streaming.remaining -= bytes.length;
        if (this.streaming.remaining === 0) this.streaming = undefined;
        continue;
      }
      if (this.buffered < headerBytes) break;
      const head = this.peek(headerBytes);
      const length = head.readUInt32LE(1);
      if (this.pageSink && head.readUInt8(0) === Frame.Pages && length >= 4) {
        if (this.buffered < headerBytes + 4) break;
        this.take(headerBytes);
        const offsetField = Buffer.from(this.take(4));
        this.pageSink.begin(offsetField, length - 4);
        if (length > 4) this.streaming = { offset: offsetField.readUInt32LE(0), remaining: length - 4 };
        continue;
      }
      if (this.buffered < headerBytes + length) break;
      this.take(headerBytes);
      this.frames.push({ type: head.readUInt8(0) as Frame, payload: this.take(length) });
    }
    if (this.frames.length > 0) this.wake();
  }

  private peek(length: number): Buffer {
    this.coalesce(length);
    return this.chunks[0]!.subarray(0, length);
  }

  private take(length: number): Buffer {
    if (length === 0) return Buffer.alloc(0);
    this.coalesce(length);
    const first = this.chunks[0]!;
    const out = first.subarray(0, length);
    if (first.length === length) this.chunks.shift();
    else this.chunks[0] = first.subarray(length);
    this.buffered -= length;
    return out;
  }

  /** Merges leading chunks until the first holds `length` bytes (they are buffered). */
  private coalesce(length: number): void {
    if (this.chunks[0]!.length >= length) return;
    let count = 0;
    for (let total = 0; total < length; count++) total += this.chunks[count]!.length;
    this.chunks.splice(0, count, Buffer.concat(this.chunks.slice(0, count)));
  }
}

export function encodeMissing(memoryBytes: number, missing: Uint32Array): Buffer {
  const payload = Buffer.alloc(4 + missing.length * 4);
  payload.writeUInt32LE(memoryBytes / wasmPageBytes, 0);
  for (const [i, value] of missing.entries()) payload.writeUInt32LE(value, 4 + i * 4);
  return payload;
}

export function decodeMissing(payload: Buffer): { memoryBytes: number; missing: Uint32Array } {
  if (payload.length < 4 || payload.length % 8 !== 4) throw new ProtocolError('malformed PostCopy frame');
  const missing = new Uint32Array((payload.length - 4) / 4);
  for (let i = 0; i < missing.length; i++) missing[i] = payload.readUInt32LE(4 + i * 4);
  return { memoryBytes: payload.readUInt32LE(0) * wasmPageBytes, missing };
}

export function json<T>(payload: Buffer): T {
  try {
    return JSON.parse(payload.toString('utf8')) as T;
  } catch {
    throw new ProtocolError('malformed control frame');
  }
}

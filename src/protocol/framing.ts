import * as v from 'valibot';
import { RoamError } from '../platform/errors.js';
import { check } from '../platform/schema.js';

/**
 * The framing shared by Roam's binary channels (the migration data channel, the gateway tunnel):
 * frames of [header][payload], the header a u8 type first and a u32 LE payload length somewhere in
 * it. This file holds what they have in common and no I/O: splitting a byte stream that arrives
 * in arbitrary chunks into frames, a limit on payloads, streaming one frame type's payload to a
 * sink as it arrives (no copy into a frame buffer), the errors, and JSON payloads checked against
 * a schema. The channels own their frame types, their extra header fields and their sockets.
 */

/** A frame arrived that breaks the protocol: malformed, out of order, or not expected here. */
export class ProtocolError extends RoamError {
  readonly code: string = 'ROAM_PROTOCOL';
}

/** A frame's payload does not decode: not JSON, or not the shape its type requires. */
export class MalformedFrameError extends ProtocolError {
  override readonly code: string = 'ROAM_PROTOCOL_MALFORMED';
}

/** A frame announced a payload larger than the channel accepts: the stream cannot be trusted further. */
export class FrameTooLargeError extends ProtocolError {
  override readonly code: string = 'ROAM_PROTOCOL_TOO_LARGE';
}

/** The channel ended or broke: the peer closed it, or the connection failed. */
export class ChannelClosedError extends ProtocolError {
  override readonly code: string = 'ROAM_PROTOCOL_CLOSED';
}

/** The stream ended in the middle of a frame. */
export class TruncatedStreamError extends ChannelClosedError {
  override readonly code: string = 'ROAM_PROTOCOL_TRUNCATED';
}

/** Where a channel's header keeps its fields: a u8 type at 0, a u32 LE payload length at `lengthAt`. */
export interface FrameLayout {
  readonly headerBytes: number;
  readonly lengthAt: number;
}

/** A header of `layout` with its type and payload length written (other fields are the caller's). */
export function frameHeader(layout: FrameLayout, type: number, payloadLength: number): Buffer {
  const header = Buffer.alloc(layout.headerBytes);
  header.writeUInt8(type, 0);
  header.writeUInt32LE(payloadLength, layout.lengthAt);
  return header;
}

/**
 * Chunks of a byte stream as they arrived, taken from the front. Chunks are joined only when a
 * caller needs more contiguous bytes than the first one holds.
 */
export class ChunkQueue {
  private chunks: Buffer[] = [];
  private length = 0;

  /** Bytes held. */
  get buffered(): number {
    return this.length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The first `count` bytes, left in the queue (count <= buffered). */
  peek(count: number): Buffer {
    this.coalesce(count);
    return this.chunks[0]!.subarray(0, count);
  }

  /** Removes and returns the first `count` bytes (count <= buffered), as a view when they lie in one chunk. */
  take(count: number): Buffer {
    if (count === 0) return Buffer.alloc(0);
    this.coalesce(count);
    return this.front(count);
  }

  /** Removes and returns up to `count` bytes of the first chunk alone: never a copy. */
  takeSome(count: number): Buffer {
    return this.front(Math.min(count, this.chunks[0]!.length));
  }

  private front(count: number): Buffer {
    const first = this.chunks[0]!;
    const out = first.subarray(0, count);
    if (first.length === count) this.chunks.shift();
    else this.chunks[0] = first.subarray(count);
    this.length -= count;
    return out;
  }

  /** Merges leading chunks until the first holds `count` bytes (they are buffered). */
  private coalesce(count: number): void {
    if (this.chunks[0]!.length >= count) return;
    let n = 0;
    for (let total = 0; total < count; n++) total += this.chunks[n]!.length;
    this.chunks.splice(0, n, Buffer.concat(this.chunks.slice(0, n)));
  }
}

/**
 * Takes one frame type's payload as its bytes arrive instead of a whole frame: the payload's first
 * `prefixBytes` (a field of its own, e.g. where the bytes go), then the rest in pieces that are
 * views of the received chunks. Calls come in stream order, ahead of frames still queued by the
 * consumer. A sink that throws ends the stream: push() rethrows.
 */
export interface StreamSink {
  /** A streamed frame begins: its header, the prefix (a copy), and how many bytes follow it. */
  begin(header: Buffer, prefix: Buffer, length: number): void;
  /** The next bytes of that frame, `at` bytes after the prefix. */
  data(bytes: Buffer, at: number): void;
}

export interface FrameSplitterOptions {
  layout: FrameLayout;
  /** What the channel is called in errors ("data channel", "tunnel"). */
  channel: string;
  /** Larger payloads are refused (FrameTooLargeError); may be changed later (see maxPayload). */
  maxPayload?: number;
  /** Frames of this type, with a payload of at least prefixBytes, go to the sink as they arrive. */
  stream?: { type: number; prefixBytes: number; sink: StreamSink };
}

/**
 * Called for each frame in stream order. A streamed frame is reported once its last byte went to
 * the sink, with `streamed` set and its prefix as the payload.
 */
export type FrameHandler = (header: Buffer, payload: Buffer, streamed: boolean) => void;

/** Splits a byte stream, pushed in chunks of any size, into frames of one layout. */
export class FrameSplitter {
  /** Payloads larger than this are refused: the connection is unusable after that. */
  maxPayload: number;
  private readonly queue = new ChunkQueue();
  /** The streamed frame in progress: its header, prefix, and how many of its bytes went to the sink and are left. */
  private streaming: { header: Buffer; prefix: Buffer; at: number; remaining: number } | undefined;
  private failure: Error | undefined;

  constructor(
    private readonly options: FrameSplitterOptions,
    private readonly onFrame: FrameHandler,
  ) {
    this.maxPayload = options.maxPayload ?? 0xffffffff;
  }

  /** Whether the bytes so far end in the middle of a frame. */
  get midFrame(): boolean {
    return this.streaming !== undefined || this.queue.buffered > 0;
  }

  /**
   * Takes the next chunk and reports every frame it completes. Throws a FrameTooLargeError on a
   * payload over the limit, or what the sink or the handler threw; after that every push throws it
   * again (a stream is not resynchronised).
   */
  push(chunk: Buffer): void {
    if (this.failure) throw this.failure;
    this.queue.push(chunk);
    try {
      this.split();
    } catch (error) {
      this.failure = error as Error;
      throw error;
    }
  }

  /** The stream ended: throws a TruncatedStreamError if it ended inside a frame. */
  end(): void {
    if (this.failure) return;
    if (!this.midFrame) return;
    const { headerBytes, lengthAt } = this.options.layout;
    const missing = this.streaming
      ? `${this.streaming.remaining} bytes of a frame`
      : this.queue.buffered < headerBytes
        ? 'part of a frame header'
        : `${headerBytes + this.queue.peek(headerBytes).readUInt32LE(lengthAt) - this.queue.buffered} bytes of a frame`;
    throw new TruncatedStreamError(`the ${this.options.channel} ended ${missing} short`);
  }

  private split(): void {
    const { headerBytes, lengthAt } = this.options.layout;
    const stream = this.options.stream;
    const queue = this.queue;
    for (;;) {
      const current = this.streaming;
      if (current) {
        if (queue.buffered === 0) return;
        const bytes = queue.takeSome(current.remaining);
        stream!.sink.data(bytes, current.at);
        current.at += bytes.length;
        current.remaining -= bytes.length;
        if (current.remaining === 0) {
          this.streaming = undefined;
          this.onFrame(current.header, current.prefix, true);
        }
        continue;
      }
      if (queue.buffered < headerBytes) return;
      const head = queue.peek(headerBytes);
      const length = head.readUInt32LE(lengthAt);
      if (length > this.maxPayload) {
        throw new FrameTooLargeError(
          `${this.options.channel}: a frame of type ${head[0]} announces ${length} bytes, more than the ${this.maxPayload} accepted`,
        );
      }
      if (stream && head[0] === stream.type && length >= stream.prefixBytes) {
        if (queue.buffered < headerBytes + stream.prefixBytes) return;
        const header = Buffer.from(queue.take(headerBytes));
        const prefix = Buffer.from(queue.take(stream.prefixBytes));
        const remaining = length - stream.prefixBytes;
        stream.sink.begin(header, prefix, remaining);
        if (remaining > 0) this.streaming = { header, prefix, at: 0, remaining };
        else this.onFrame(header, prefix, true);
        continue;
      }
      if (queue.buffered < headerBytes + length) return;
      const header = queue.take(headerBytes);
      this.onFrame(header, queue.take(length), false);
    }
  }
}

/**
 * The schema of one frame's JSON payload, named after the frame (the name goes into decode()'s
 * errors). Frame types derive from these: v.InferOutput<typeof schema>.
 */
export function frameSchema<const T extends v.GenericSchema>(frame: string, schema: T) {
  return v.pipe(schema, v.title(frame));
}

/**
 * A JSON frame payload checked against its schema. Throws a MalformedFrameError naming the frame
 * and what was wrong with it.
 */
export function decode<T extends v.GenericSchema>(schema: T, payload: Uint8Array): v.InferOutput<T> {
  const frame = v.getTitle(schema) ?? 'control';
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('utf8'));
  } catch (error) {
    throw new MalformedFrameError(`malformed ${frame} frame: not JSON (${(error as Error).message})`, {
      cause: error,
    });
  }
  const checked = check(schema, value);
  if (!checked.ok) throw new MalformedFrameError(`malformed ${frame} frame: ${checked.message}`);
  return checked.value;
}

import type { Socket } from 'node:net';
import * as v from 'valibot';
import { maxWasm32Pages, wasmPageBytes } from '../build/module-binary.js';
import {
  ChannelClosedError,
  decode,
  type FrameLayout,
  FrameSplitter,
  frameHeader,
  frameSchema,
  MalformedFrameError,
  ProtocolError,
} from './framing.js';

/**
 * The data channel of a migration: one TCP connection from the source container process to the
 * destination's, carrying frames of [u8 type][u32 LE payload length][payload] (framing.ts).
 * Control frames carry JSON, checked against their schema (FramePayload) as they are decoded;
 * PAGES, FILE and LOG frames carry bytes.
 */
export enum Frame {
  /**
   * s->d {ticket, version, epoch, ...}: the ticket proves the source was sent by the destination's
   * agent; version is the protocol's (src/migrate/session.ts: same major or refused); epoch the
   * container's new one, the only one the destination accepts.
   */
  Hello = 1,
  /** d->s {version}: module compiled, memory ready for pages. */
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
  /**
   * s->d {state, epoch}: the stopped guest's state; all pages, files and log were sent. Refused unless
   * the final round checked out (post-copy: unless the missing ranges were announced).
   */
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

/**
 * The data channel's protocol version, "major.minor", sent in Hello and Ready. The rule (checked by
 * src/migrate/session.ts `checkProtocolVersion`): peers of the same major talk, a minor adds only
 * what the other side may ignore; a different major, or no version at all (peers from before
 * versions: major 0), is refused with both versions named.
 */
export const dataChannelVersion = '1.0';

const count = v.pipe(v.number(), v.integer(), v.minValue(0));
const u32 = v.pipe(count, v.maxValue(0xffffffff));
/** A wasm32 linear memory's size: whole 64 KiB pages, 4 GiB at most. */
const memoryBytes = v.pipe(
  count,
  v.maxValue(maxWasm32Pages * wasmPageBytes),
  v.check((n) => n % wasmPageBytes === 0, 'not a whole number of 64 KiB pages'),
);
const milliseconds = v.pipe(v.number(), v.finite());
/** A container's generation, raised by each migration (docs/fencing.md). */
const epoch = v.pipe(count, v.minValue(1));
/** "major.minor" (src/migrate/session.ts `protocolVersion`). */
const version = v.pipe(v.string(), v.regex(/^\d+\.\d+$/, 'expected "major.minor"'));

/** The JSON payloads of the control frames, by frame; decode(FramePayload.X, payload) checks one. */
export const FramePayload = {
  Hello: frameSchema(
    'Hello',
    v.object({
      ticket: v.string(),
      /** Absent from peers older than versions (major 0): the session refuses them by name. */
      version: v.optional(version),
      /** Absent only from peers that the version check refuses first. */
      epoch: v.optional(epoch),
      memoryBytes,
      /** The source will open the page channels: the destination runs the guest before all pages are there. */
      postCopy: v.optional(v.boolean()),
      /** Post-copy proper: all of the announced memory will come over the page channels. */
      wholeMemory: v.optional(v.boolean()),
    }),
  ),
  Ready: frameSchema('Ready', v.object({ version: v.optional(version) })),
  Round: frameSchema('Round', v.object({ round: v.pipe(u32, v.minValue(1)), memoryBytes })),
  RoundEnd: frameSchema(
    'RoundEnd',
    v.object({
      sha256: v.pipe(v.string(), v.hexadecimal(), v.length(64)),
      bytes: count,
      final: v.optional(v.boolean()),
    }),
  ),
  RoundAck: frameSchema('RoundAck', v.object({ round: u32 })),
  FileDelete: frameSchema('FileDelete', v.object({ dir: u32, path: v.string() })),
  /** The container state itself is checked where it is loaded; here it must be an object with its preopens. */
  State: frameSchema(
    'State',
    v.object({
      state: v.looseObject({ preopens: v.array(v.looseObject({ guestPath: v.string() })) }),
      epoch,
    }),
  ),
  Running: frameSchema('Running', v.object({ restoreMs: milliseconds, sinceResumeMs: milliseconds })),
  Abort: frameSchema('Abort', v.object({ reason: v.string() })),
  Error: frameSchema('Error', v.object({ message: v.string() })),
  Resident: frameSchema(
    'Resident',
    v.object({
      stats: v.object({
        faults: v.number(),
        requestedBytes: v.number(),
        receivedBytes: v.number(),
        zeroBytes: v.number(),
        duplicateBytes: v.number(),
        faultWaitMsMean: v.number(),
        faultWaitMsMax: v.number(),
        ms: v.number(),
      }),
    }),
  ),
};

export type Hello = v.InferOutput<typeof FramePayload.Hello>;
export type FileDelete = v.InferOutput<typeof FramePayload.FileDelete>;

/** The JSON header of a FILE frame ([u32 LE header length][FileHeader JSON][bytes]). */
export const FileHeader = frameSchema(
  'File',
  v.pipe(
    v.object({
      /** Index of the preopened directory. */
      dir: u32,
      /** Path relative to it, '/'-separated. */
      path: v.string(),
      kind: v.picklist(['file', 'directory', 'symlink']),
      mode: u32,
      /** Whole file size (kind 'file'); pieces of one file arrive in order, at increasing offsets. */
      size: count,
      offset: count,
      /** Symlink target (kind 'symlink'). */
      target: v.optional(v.string()),
    }),
    v.check((header) => header.kind !== 'symlink' || header.target !== undefined, 'a symlink without its target'),
  ),
);
export type FileHeader = v.InferOutput<typeof FileHeader>;

/** The payload of a FILE frame: its header and the piece of the file. */
export function encodeFile(header: FileHeader, bytes: Uint8Array): Buffer {
  const head = Buffer.from(JSON.stringify(header));
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32LE(head.length);
  return Buffer.concat([length, head, bytes]);
}

export function decodeFile(payload: Buffer): { header: FileHeader; bytes: Buffer } {
  const headLength = payload.length >= 4 ? payload.readUInt32LE(0) : -1;
  if (headLength < 0 || 4 + headLength > payload.length)
    throw new MalformedFrameError(`malformed File frame: ${payload.length} bytes cannot hold its header`);
  return { header: decode(FileHeader, payload.subarray(4, 4 + headLength)), bytes: payload.subarray(4 + headLength) };
}

/** The peer's own Error frame: it gave up (a destination that sends one never ran the guest). */
export class PeerError extends ProtocolError {
  override readonly code: string = 'ROAM_PEER';
}

export const dataChannelLayout: FrameLayout = { headerBytes: 5, lengthAt: 1 };
/** Payload of one PAGES frame at most; bigger ranges are split. */
export const maxPagesPayload = 1 << 20;
/** PAGES frames begin with the u32 LE offset of their bytes in memory. */
const pagesOffsetBytes = 4;

const frameName = (type: number) => Frame[type] ?? `unknown (${type})`;

/** Writes frames to a socket, resolving flush() once everything written so far reached the kernel. */
export class FrameWriter {
  private lastWrite: Promise<void> = Promise.resolve();

  constructor(private readonly socket: Socket) {}

  /** One frame; an object payload goes as JSON. */
  send(type: Frame, payload: Uint8Array | object = new Uint8Array(0)): void {
    const body = payload instanceof Uint8Array ? payload : Buffer.from(JSON.stringify(payload));
    this.write([frameHeader(dataChannelLayout, type, body.length), body]);
  }

  /** One frame whose payload is the concatenation of `parts` (written without copying them). */
  sendParts(type: Frame, parts: Uint8Array[]): void {
    const length = parts.reduce((n, p) => n + p.length, 0);
    this.write([frameHeader(dataChannelLayout, type, length), ...parts]);
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
  /** A streamed PAGES frame (its bytes went to the PageSink): only its offset field. */
  payload: Buffer;
  /** A PAGES frame whose bytes went to the PageSink as they arrived. */
  streamed: boolean;
}

/**
 * Takes PAGES frames as their bytes arrive, instead of queueing whole frames: no copy into a
 * frame buffer. Called in stream order, ahead of frames still queued for next(); the protocol
 * makes that safe (pages of a round are sent only after the previous round was acknowledged).
 * Each such frame is still queued for next() once all of its bytes went here (streamed, with its
 * offset field as payload), so that the consumer sees where it fell among the other frames.
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
 * End of stream or a socket error make next() reject with a ChannelClosedError (a
 * TruncatedStreamError if it ended inside a frame); a frame over `maxPayload` with a
 * FrameTooLargeError.
 */
export class FrameReader {
  private readonly frames: ReceivedFrame[] = [];
  private readonly splitter: FrameSplitter;
  private failure: Error | undefined;
  private waiter: (() => void) | undefined;

  constructor(socket: Socket, pageSink?: PageSink, options: { maxPayload?: number } = {}) {
    let pagesAt = 0;
    this.splitter = new FrameSplitter(
      {
        layout: dataChannelLayout,
        channel: 'data channel',
        maxPayload: options.maxPayload,
        stream: pageSink && {
          type: Frame.Pages,
          prefixBytes: pagesOffsetBytes,
          sink: {
            begin: (_header, offsetField, length) => {
              pagesAt = offsetField.readUInt32LE(0);
              pageSink.begin(offsetField, length);
            },
            data: (bytes, at) => pageSink.data(pagesAt + at, bytes),
          },
        },
      },
      (header, payload, streamed) => this.frames.push({ type: header[0] as Frame, payload, streamed }),
    );
    socket.on('data', (chunk: Buffer) => {
      try {
        this.splitter.push(chunk);
      } catch (error) {
        // Too large, or the page sink refused bytes (out of bounds...): nothing further on this
        // connection counts, and the peer, maybe in the middle of a round of pages, learns at once.
        this.fail(error as Error);
        socket.destroy();
      }
      if (this.frames.length > 0) this.wake();
    });
    const closed = (error: ChannelClosedError) => {
      try {
        this.splitter.end();
        this.fail(error);
      } catch (truncated) {
        this.fail(truncated as Error);
      }
    };
    socket.on('end', () => closed(new ChannelClosedError('the peer closed the data channel')));
    socket.on('close', () => closed(new ChannelClosedError('the data channel closed')));
    socket.on('error', (error) => closed(new ChannelClosedError(`data channel: ${error.message}`, { cause: error })));
  }

  /** Payloads larger than this are refused from now on (small until the peer proved who it is). */
  set maxPayload(bytes: number) {
    this.splitter.maxPayload = bytes;
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
    if (frame.type === type && !frame.streamed) return frame.payload;
    throw unexpected(frame, Frame[type]);
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
}

/**
 * The error for a frame that has no place where it came: the peer's own Error frame becomes a
 * PeerError, anything else a ProtocolError that names it.
 */
export function unexpected(frame: ReceivedFrame, expected?: string): ProtocolError {
  if (frame.type === Frame.Error && !frame.streamed)
    return new PeerError(decode(FramePayload.Error, frame.payload).message);
  const name = frameName(frame.type);
  return new ProtocolError(expected ? `expected ${expected}, got a ${name} frame` : `unexpected ${name} frame`);
}

export function encodeMissing(memoryBytes: number, missing: Uint32Array): Buffer {
  const payload = Buffer.alloc(4 + missing.length * 4);
  payload.writeUInt32LE(memoryBytes / wasmPageBytes, 0);
  for (const [i, value] of missing.entries()) payload.writeUInt32LE(value, 4 + i * 4);
  return payload;
}

export function decodeMissing(payload: Buffer): { memoryBytes: number; missing: Uint32Array } {
  if (payload.length < 4 || payload.length % 8 !== 4)
    throw new MalformedFrameError(`malformed PostCopy frame: ${payload.length} bytes are no u32 and pairs of them`);
  const missing = new Uint32Array((payload.length - 4) / 4);
  for (let i = 0; i < missing.length; i++) missing[i] = payload.readUInt32LE(4 + i * 4);
  return { memoryBytes: payload.readUInt32LE(0) * wasmPageBytes, missing };
}

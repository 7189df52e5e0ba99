import { type ChunkQueue, ProtocolError } from './framing.js';

/**
 * Post-copy's page channels (migrate/post-copy.ts on the source, native/src/postcopy.c on the
 * destination): two TCP connections next to the data channel. Little-endian u32s:
 *   source -> destination, on each: [ticket length][ticket], then chunks
 *     [offset][length | ZERO_CHUNK][bytes, unless ZERO_CHUNK]
 *   destination -> source, on the fault channel: requests [offset][length] (one granule each),
 *     and [RESIDENT][0] once every page arrived
 * This file is the one source of the channel's constants: native/src/page_channel.h is generated
 * from `nativeConstants` by scripts/gen-native-constants.mjs (`npm run gen:native-constants`), and
 * a unit test fails when the checked-in header differs.
 */

/** Post-copy's unit of transfer and of requests: 64 KiB (a wasm page). */
export const granuleBytes = 64 * 1024;
/** Set in a chunk's length: the chunk is all zero and no bytes follow its header. */
export const zeroChunkFlag = 0x80000000;
/** A fault-channel message's offset that means every page arrived (its length is 0). */
export const residentMarker = 0xffffffff;
/** The destination accepts chunks up to this size (the source pushes 1 MiB ones). */
export const maxChunkBytes = 4 * 1024 * 1024;
/** The longest ticket a page channel's hello may carry. */
export const maxTicketBytes = 256;
/** A chunk header, a request, the resident message: two u32s. */
export const messageBytes = 8;
/** The hello's ticket length field. */
export const ticketLengthBytes = 4;

/** What the C addon shares with this file, as #defines of native/src/page_channel.h. */
export const nativeConstants: readonly { name: string; value: number; doc: string }[] = [
  { name: 'GRANULE', value: granuleBytes, doc: 'Unit of requests and of transfer (bytes).' },
  { name: 'ZERO_CHUNK', value: zeroChunkFlag, doc: "Flag in a chunk's length: all zero, no bytes follow." },
  { name: 'RESIDENT', value: residentMarker, doc: 'Offset of the last fault-channel message: every page arrived.' },
  { name: 'MAX_CHUNK', value: maxChunkBytes, doc: 'Largest chunk accepted (bytes).' },
  { name: 'MAX_TICKET', value: maxTicketBytes, doc: "Longest ticket in a channel's hello (bytes)." },
  { name: 'MESSAGE_BYTES', value: messageBytes, doc: 'A chunk header or a fault-channel message: two u32 LE.' },
  { name: 'TICKET_LENGTH_BYTES', value: ticketLengthBytes, doc: "The hello's u32 LE ticket length." },
];

/** What the source sends first on each page channel. */
export function encodePageHello(ticket: string): Buffer {
  const bytes = Buffer.from(ticket);
  if (bytes.length > maxTicketBytes)
    throw new ProtocolError(`page channel: a ticket of ${bytes.length} bytes (at most ${maxTicketBytes})`);
  const hello = Buffer.alloc(ticketLengthBytes + bytes.length);
  hello.writeUInt32LE(bytes.length, 0);
  bytes.copy(hello, ticketLengthBytes);
  return hello;
}

/** The header of a chunk of `length` bytes at `offset`; an all-zero chunk is sent as this alone. */
export function encodeChunkHeader(offset: number, length: number, zero: boolean): Buffer {
  const header = Buffer.allocUnsafe(messageBytes);
  header.writeUInt32LE(offset, 0);
  header.writeUInt32LE(zero ? (length | zeroChunkFlag) >>> 0 : length, 4);
  return header;
}

/** A message of the fault channel, destination -> source. */
export function encodeRequest(offset: number, length: number): Buffer {
  const message = Buffer.allocUnsafe(messageBytes);
  message.writeUInt32LE(offset, 0);
  message.writeUInt32LE(length, 4);
  return message;
}

/**
 * The next fault-channel message complete in `queue`, destination -> source: a page request, or
 * the report that every page arrived (offset residentMarker); undefined until one is complete.
 */
export function takeMessage(queue: ChunkQueue): { offset: number; length: number } | undefined {
  if (queue.buffered < messageBytes) return undefined;
  const message = queue.take(messageBytes);
  return { offset: message.readUInt32LE(0), length: message.readUInt32LE(4) };
}

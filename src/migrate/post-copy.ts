import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type LazyRestoreStats, nativeAddon } from '../native/addon.js';
import { ChunkQueue } from '../protocol/framing.js';
import {
  encodeChunkHeader,
  encodePageHello,
  granuleBytes,
  residentMarker,
  takeMessage,
} from '../protocol/page-channel.js';
import { MigrationError } from './errors.js';
import { failpointActive, killAgentAt } from './failpoint.js';

export { granuleBytes };

/**
 * Post-copy's page channels: two more TCP connections from the source to the destination, next
 * to the data channel, whose ends the destination's native thread owns (native/src/postcopy.c).
 * On the fault channel it asks for the 64 KiB granules the guest faults on and gets them back;
 * on the push channel the source streams all the rest in order. Separate, so that an answer
 * never waits behind pushed megabytes. The wire format and its constants: protocol/page-channel.ts.
 */
/** Pushed chunks hold up to this much; requests get exactly their granule. */
const pushChunkBytes = 1 << 20;
/** Pushes wait while this much is queued in Node for the push channel. */
const pushQueueBytes = 1 << 20;
/**
 * At most this much is pushed per turn of the event loop: while the kernel takes all it is given,
 * a push loop would otherwise run to the end and leave the guest's page requests unanswered.
 */
const pushBurstBytes = 4 << 20;

/**
 * [first, end) ranges of 64 KiB granules, pairs in a flat array: what the destination lacks. In
 * granules rather than bytes so that the end of a 4 GiB memory (wasm32's largest) fits a u32.
 */
export type GranuleRanges = Uint32Array;

/** Merges byte ranges (increasing, possibly adjacent) rounded out to whole granules. */
export function granuleRanges(ranges: { offset: number; length: number }[], memoryBytes: number): GranuleRanges {
  const out: number[] = [];
  for (const { offset, length } of ranges) {
    const start = Math.floor(offset / granuleBytes);
    const end = Math.min(memoryBytes / granuleBytes, Math.ceil((offset + length) / granuleBytes));
    if (out.length > 0 && start <= out[out.length - 1]!) out[out.length - 1] = Math.max(out[out.length - 1]!, end);
    else out.push(start, end);
  }
  return Uint32Array.from(out);
}

/** All of a memory of `memoryBytes` (whole granules: wasm pages are 64 KiB too). */
export function allGranules(memoryBytes: number): GranuleRanges {
  return Uint32Array.from([0, memoryBytes / granuleBytes]);
}

export function rangeBytes(ranges: GranuleRanges): number {
  let granules = 0;
  for (let i = 0; i < ranges.length; i += 2) granules += ranges[i + 1]! - ranges[i]!;
  return granules * granuleBytes;
}

function openPageChannel(host: string, port: number, ticket: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true });
    socket.once('connect', () => {
      try {
        socket.write(encodePageHello(ticket));
      } catch (error) {
        socket.destroy();
        reject(new MigrationError(`cannot open the page channel: ${(error as Error).message}`, { cause: error }));
        return;
      }
      resolve(socket);
    });
    socket.once('error', (error) =>
      reject(new MigrationError(`cannot open the page channel to ${host}:${port}: ${error.message}`)),
    );
  });
}

/** The two page channels, opened in this order (the destination tells them apart by it). */
export async function openPageChannels(host: string, port: number, ticket: string): Promise<PageChannels> {
  const push = await openPageChannel(host, port, ticket);
  try {
    return { push, fault: await openPageChannel(host, port, ticket) };
  } catch (error) {
    push.destroy();
    throw error;
  }
}

export interface PageChannels {
  push: Socket;
  fault: Socket;
}

/** What the page server needs of its two channels (sockets; streams in tests). */
export interface PageStreams {
  push: Duplex;
  fault: Duplex;
}

/**
 * The source's side of the page channels: answers the destination's requests at once and pushes
 * every other missing granule in the background, from the stopped guest's memory (which it keeps
 * until the destination has all of it): first the `hot` granules (those the guest wrote most
 * recently, which it is likely to touch first at the destination), then the rest in address
 * order. `done` resolves when the destination reports every page in, and rejects if a channel
 * breaks before: the destination is lost.
 */
export class PageServer {
  readonly done: Promise<{ pushedBytes: number; requestedBytes: number; hotBytes: number }>;
  private readonly sent: Uint8Array;
  /** 1 for each granule the destination lacks: nothing else is ever sent. */
  private readonly wanted: Uint8Array;
  private pushedBytes = 0;
  private requestedBytes = 0;
  private hotBytes = 0;
  private pushing = false;
  /** Pushing the hot set only (between the stop and the guest running at the destination). */
  private hotOnly = false;
  /** Next hot push position: index into the hot ranges, and the granule there. */
  private hotIndex = 0;
  private hotCursor = 0;
  private pushScheduled = false;
  private readonly missingBytes: number;
  private finished = false;
  /** Next push position: index into the missing ranges, and the granule there. */
  private rangeIndex = 0;
  private cursor = 0;

  constructor(
    private readonly channels: PageStreams,
    private readonly memory: Uint8Array,
    private readonly missing: GranuleRanges,
    private readonly hot: GranuleRanges = new Uint32Array(0),
  ) {
    const { push, fault } = channels;
    this.sent = new Uint8Array(Math.ceil(memory.length / granuleBytes));
    this.wanted = new Uint8Array(this.sent.length);
    for (let i = 0; i < missing.length; i += 2) this.wanted.fill(1, missing[i], missing[i + 1]);
    this.missingBytes = rangeBytes(missing);
    this.cursor = missing[0] ?? 0;
    this.hotCursor = hot[0] ?? 0;
    const pending = new ChunkQueue();
    this.done = new Promise((resolve, reject) => {
      fault.on('data', (chunk: Buffer) => {
        pending.push(chunk);
        for (let message = takeMessage(pending); message; message = takeMessage(pending)) {
          if (message.offset === residentMarker) {
            this.finished = true;
            push.end();
            fault.end();
            resolve({ pushedBytes: this.pushedBytes, requestedBytes: this.requestedBytes, hotBytes: this.hotBytes });
            return;
          }
          this.answer(message.offset, message.length);
        }
      });
      const lost = (why: string) => {
        if (!this.finished) reject(new MigrationError(`page channel: ${why}`));
        this.finished = true;
      };
      // Only the fault channel decides: the destination's last word comes there. The push channel
      // may be reset at the end (pushes still in flight when the destination closed it), and if
      // it breaks before, the destination gives up and closes the fault channel too.
      fault.on('error', (error) => lost(error.message));
      fault.on('close', () => lost('closed'));
      push.on('error', () => (this.pushing = false));
    });
    this.done.catch(() => undefined);
    push.on('drain', () => this.push());
  }

  /** Bytes sent so far, asked for and pushed. */
  get sentBytes(): number {
    return this.pushedBytes + this.requestedBytes;
  }

  close(): void {
    this.channels.push.destroy();
    this.channels.fault.destroy();
  }

  /** Pushes the hot set (right after the guest's state went, while the destination restores it). */
  pushHot(): void {
    if (failpointActive('source-push-held') || this.pushing) return;
    this.hotOnly = true;
    this.pushing = true;
    this.push();
  }

  /** Starts the background push of everything left, what is left of the hot set first (once the destination runs the guest). */
  startPushing(): void {
    if (failpointActive('source-push-held')) return;
    this.hotOnly = false;
    this.pushing = true;
    this.push();
  }

  private answer(offset: number, length: number): void {
    if (
      offset % granuleBytes !== 0 ||
      length !== Math.min(granuleBytes, this.memory.length - offset) ||
      offset >= this.memory.length
    ) {
      this.channels.fault.destroy(new Error(`bad page request (offset ${offset}, length ${length})`));
      return;
    }
    const granule = offset / granuleBytes;
    if (this.sent[granule]) return; // on its way already
    this.sent[granule] = 1;
    this.requestedBytes += length;
    this.sendChunk(this.channels.fault, offset, length);
  }

  private push(): void {
    const socket = this.channels.push;
    let burst = 0;
    while (this.pushing && !this.finished && socket.writableLength < pushQueueBytes) {
      if (burst >= pushBurstBytes) {
        // The rest on the next turn, after the requests that came in meanwhile.
        if (!this.pushScheduled) {
          setImmediate(() => {
            this.pushScheduled = false;
            this.push();
          });
        }
        this.pushScheduled = true;
        return;
      }
      const next = this.nextHot() ?? (this.hotOnly ? undefined : this.nextUnsent());
      if (!next) return;
      this.pushedBytes += next.length;
      burst += next.length;
      this.sendChunk(socket, next.offset, next.length);
    }
  }

  /** The next run of unsent, missing granules in the hot ranges, up to pushChunkBytes. */
  private nextHot(): { offset: number; length: number } | undefined {
    const most = pushChunkBytes / granuleBytes;
    const hot = this.hot;
    while (this.hotIndex < hot.length) {
      const end = Math.min(hot[this.hotIndex + 1]!, this.sent.length);
      while (this.hotCursor < end && (this.sent[this.hotCursor] || !this.wanted[this.hotCursor])) this.hotCursor++;
      if (this.hotCursor >= end) {
        this.hotIndex += 2;
        this.hotCursor = hot[this.hotIndex] ?? 0;
        continue;
      }
      const first = this.hotCursor;
      while (
        this.hotCursor < end &&
        this.hotCursor - first < most &&
        !this.sent[this.hotCursor] &&
        this.wanted[this.hotCursor]
      )
        this.sent[this.hotCursor++] = 1;
      this.hotBytes += (this.hotCursor - first) * granuleBytes;
      return { offset: first * granuleBytes, length: (this.hotCursor - first) * granuleBytes };
    }
    return undefined;
  }

  /** The next run of unsent granules in the missing ranges, up to pushChunkBytes. */
  private nextUnsent(): { offset: number; length: number } | undefined {
    const most = pushChunkBytes / granuleBytes;
    while (this.rangeIndex < this.missing.length) {
      const end = this.missing[this.rangeIndex + 1]!;
      while (this.cursor < end && this.sent[this.cursor]) this.cursor++;
      if (this.cursor >= end) {
        this.rangeIndex += 2;
        this.cursor = this.missing[this.rangeIndex] ?? 0;
        continue;
      }
      const first = this.cursor;
      while (this.cursor < end && this.cursor - first < most && !this.sent[this.cursor]) this.sent[this.cursor++] = 1;
      return { offset: first * granuleBytes, length: (this.cursor - first) * granuleBytes };
    }
    return undefined;
  }

  /** One chunk; all-zero ones go as a header alone. */
  private sendChunk(socket: Duplex, offset: number, length: number): void {
    const bytes = this.memory.subarray(offset, offset + length);
    const zero = isZero(bytes);
    socket.write(encodeChunkHeader(offset, length, zero));
    if (!zero) socket.write(bytes);
    if (this.sentBytes >= this.missingBytes / 4) killAgentAt('source-post-copy');
  }
}

const zeros = new Uint8Array(pushChunkBytes);

function isZero(bytes: Uint8Array): boolean {
  return Buffer.compare(bytes, zeros.subarray(0, bytes.length)) === 0;
}

/** Whether this node can receive post-copy (userfaultfd missing mode through the addon), and why not. */
export function lazyRestoreSupport(): { ok: boolean; reason: string } {
  const addon = nativeAddon();
  if (!addon) return { ok: false, reason: 'the native addon is not available' };
  const probe = addon.probeLazyRestore();
  return probe.ok
    ? { ok: true, reason: '' }
    : { ok: false, reason: probe.reason ?? 'userfaultfd missing mode does not work here' };
}

/**
 * The destination's side: drops the `missing` ranges of the guest's memory and has the addon's
 * thread fetch them over the page channels (accepted paused: nothing of them was read here).
 * Throws if that cannot be set up. The promise resolves when every page is in and rejects if the
 * source is lost first (the guest then stays blocked on its next missing page: it cannot go on).
 */
export function startLazyRestore(
  memory: WebAssembly.Memory,
  missing: GranuleRanges,
  channels: PageChannels,
  ticket: string,
): Promise<LazyRestoreStats> {
  const addon = nativeAddon();
  if (!addon) throw new MigrationError('post-copy needs the native addon, which is not available here');
  let onEnd!: (error: string | null, stats: LazyRestoreStats) => void;
  const resident = new Promise<LazyRestoreStats>((resolve, reject) => {
    onEnd = (error, stats) => (error ? reject(new MigrationError(error)) : resolve(stats));
  });
  // Marked handled: a source lost before the guest runs here fails the migration through the
  // data channel, and this must not also end the process as an unhandled rejection.
  resident.catch(() => undefined);
  try {
    addon.lazyRestore(
      new Uint8Array(memory.buffer),
      missing,
      descriptor(channels.push),
      descriptor(channels.fault),
      Buffer.from(ticket),
      onEnd,
    );
  } catch (error) {
    throw new MigrationError(`post-copy cannot start here: ${(error as Error).message}`);
  } finally {
    // The addon has its own descriptors for them.
    channels.push.destroy();
    channels.fault.destroy();
  }
  return resident;
}

function descriptor(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new MigrationError('a page channel has no file descriptor');
  return fd;
}

import { createHash, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { maxWasm32Pages, wasmPageBytes } from '../build/module-binary.js';
import type { ContainerState } from '../container/container.js';
import type { LazyRestoreStats } from '../native/addon.js';
import {
  dataChannelVersion,
  decodeMissing,
  Frame,
  FramePayload,
  FrameReader,
  FrameWriter,
  type PageSink,
  unexpected,
} from '../protocol/data-channel.js';
import { ChannelClosedError, decode, ProtocolError } from '../protocol/framing.js';
import { failpointActive, killAgentAt, killAgentSoon } from './failpoint.js';
import { DirectoryReceiver } from './files.js';
import { allGranules, type GranuleRanges } from './post-copy.js';
import { DestinationSession } from './session.js';

const maxMemoryBytes = maxWasm32Pages * wasmPageBytes;
/** Frames are at most this large until the source's Hello proved it knows the ticket. */
const maxHelloBytes = 64 << 10;

/** What the receiver needs of the container being built on the destination. */
export interface MigrationSink {
  /**
   * Builds the guest (compiles the module) with `memoryBytes` of zeroed memory; returns that memory.
   * `postCopy`: the source will open the page channel too.
   */
  prepare(memoryBytes: number, postCopy: boolean): Promise<WebAssembly.Memory>;
  /**
   * Post-copy: hands the `missing` granules of memory to the lazy restore (over the page channel)
   * before the guest runs; `resident` settles when they all arrived, or the source was lost.
   */
  lazyRestore?(memory: WebAssembly.Memory, missing: GranuleRanges): Promise<{ resident: Promise<LazyRestoreStats> }>;
  /** Host directories that replace the source's preopens, in preopen order. */
  directories: string[];
  /** Appends the log the container had on the source. */
  writeLog(bytes: Buffer): void;
  /** Optional: faults in memory[offset, offset+length) before pages are copied there (faster in bulk). */
  populate?(memory: Uint8Array, offset: number, length: number): void;
  /**
   * Asks the destination's agent for leave to run the guest of `epoch` (EpochFence.commit);
   * rejects if the source had that epoch aborted: the guest must then never run.
   */
  commit(epoch: number): Promise<void>;
  /**
   * Loads the guest's state and runs it (committed; in post-copy, its memory still arriving).
   * Resolves with the moment it began to run (performance.now() scale); rejects, the guest never
   * run, if the state does not load.
   */
  run(state: ContainerState): Promise<number>;
}

/** What the destination's agent told it to expect. */
export interface Expected {
  /** Proves the source was sent by the destination's agent. */
  ticket: string;
  /** The container's new epoch (the one this migration raises it to): a Hello or State of any other is refused. */
  epoch: number;
}

/**
 * The destination side of a migration, on one accepted data-channel connection: an adapter that
 * turns frames into events of a DestinationSession (session.ts, which refuses what comes out of
 * order or from another epoch) and does the work around them. Resolves once the guest runs here
 * (committed) with all of its memory; rejects if the source aborts, the connection drops or
 * anything fails to check out before the commit, leaving the guest never run, or, in post-copy,
 * if the source is lost before every page arrived (after it ran).
 */
export async function migrateIn(socket: Socket, expected: Expected, sink: MigrationSink): Promise<void> {
  const session = new DestinationSession(expected.epoch);
  let memory: WebAssembly.Memory | undefined;
  let hash = createHash('sha256');
  // Pages go straight from the socket into the guest's memory (grown to fit if the round said so).
  const pages: PageSink = {
    begin: (offsetField, length) => {
      if (!memory) throw new ProtocolError('pages before the destination was ready');
      const offset = offsetField.readUInt32LE(0);
      if (offset + length > maxMemoryBytes)
        throw new ProtocolError(`pages at ${offset} beyond the largest wasm32 memory`);
      const current = memory.buffer.byteLength;
      if (offset + length > current) memory.grow(Math.ceil((offset + length - current) / wasmPageBytes));
      sink.populate?.(new Uint8Array(memory.buffer), offset, length);
      if (failpointActive('corrupt-pages'))
        offsetField = Buffer.from([offsetField[0]! ^ 0xff, ...offsetField.subarray(1)]);
      killAgentAt('destination-round');
      hash.update(offsetField);
    },
    data: (offset, bytes) => {
      new Uint8Array(memory!.buffer).set(bytes, offset);
      hash.update(bytes);
    },
  };
  // Until the ticket checked out, frames stay small (a Hello is).
  const reader = new FrameReader(socket, pages, { maxPayload: maxHelloBytes });
  const writer = new FrameWriter(socket);
  try {
    const hello = decode(FramePayload.Hello, await reader.expect(Frame.Hello));
    if (!sameSecret(hello.ticket, expected.ticket)) throw new ProtocolError('wrong migration ticket');
    session.on({ type: 'hello', version: hello.version, epoch: hello.epoch, wholeMemory: hello.wholeMemory === true });
    reader.maxPayload = 0xffffffff;
    if (hello.postCopy && !sink.lazyRestore)
      throw new ProtocolError('this node cannot receive post-copy (no userfaultfd lazy restore here)');
    memory = await sink.prepare(hello.memoryBytes, hello.postCopy === true);
    let lazy: Promise<{ resident: Promise<LazyRestoreStats> }> | undefined;
    // Post-copy proper: all of this memory will be missing, so the lazy restore is set up now,
    // before the source stops the guest (what the guest grows later comes as pages).
    if (hello.postCopy && hello.wholeMemory) {
      lazy = sink.lazyRestore!(memory, allGranules(hello.memoryBytes));
      await lazy;
    }
    writer.send(Frame.Ready, { version: dataChannelVersion });
    killAgentAt('destination-ready');
    let files: DirectoryReceiver | undefined;
    for (;;) {
      const frame = await reader.next();
      const { type, payload } = frame;
      if (type === Frame.Round) {
        const header = decode(FramePayload.Round, payload);
        session.on({ type: 'round', round: header.round });
        const current = memory.buffer.byteLength;
        if (header.memoryBytes > current) memory.grow((header.memoryBytes - current) / wasmPageBytes);
      } else if (type === Frame.Pages && frame.streamed) {
        // Its bytes are in memory already; they count only inside a round (its checksum covers them).
        session.on({ type: 'pages' });
      } else if (type === Frame.RoundEnd) {
        const end = decode(FramePayload.RoundEnd, payload);
        const round = session.round;
        session.on({ type: 'round-end', final: end.final === true });
        const digest = hash.digest('hex');
        hash = createHash('sha256');
        if (digest !== end.sha256) throw new ProtocolError(`checksum mismatch in round ${round}`);
        if (!end.final) writer.send(Frame.RoundAck, { round });
      } else if (type === Frame.File || type === Frame.FileDelete) {
        session.on({ type: 'file' });
        files ??= new DirectoryReceiver(sink.directories);
        if (type === Frame.File) files.applyFile(payload);
        else files.applyDelete(decode(FramePayload.FileDelete, payload));
      } else if (type === Frame.PostCopy) {
        if (!hello.postCopy || lazy)
          throw new ProtocolError('PostCopy frame in a migration announced without post-copy, or twice');
        session.on({ type: 'post-copy' });
        const { memoryBytes, missing } = decodeMissing(payload);
        const current = memory.buffer.byteLength;
        if (memoryBytes > current) memory.grow((memoryBytes - current) / wasmPageBytes);
        // Not awaited here: it sets up while the rest arrives and the guest's state is restored.
        lazy = sink.lazyRestore!(memory, missing);
        lazy.catch(() => undefined);
      } else if (type === Frame.Log) {
        session.on({ type: 'log' });
        sink.writeLog(payload);
      } else if (type === Frame.State) {
        killAgentAt('destination-state');
        const started = performance.now();
        const { state, epoch } = decode(FramePayload.State, payload);
        // The memory the guest runs with must be all here and checked: a final round that
        // checked out, or in post-copy, the lazy restore of what is missing; and of this epoch.
        session.on({ type: 'state', epoch });
        if (state.preopens.length !== sink.directories.length)
          throw new ProtocolError('the state does not match the announced directories');
        new DirectoryReceiver(sink.directories); // a directory that stayed empty still exists here
        const restored = {
          ...state,
          preopens: state.preopens.map((p, i) => ({ guestPath: p.guestPath, hostPath: sink.directories[i]! })),
        } as unknown as ContainerState;
        // The guest must not touch its memory before the lazy restore holds the missing ranges.
        await lazy;
        // The agent's leave to run this epoch: refused if the source, having lost us, aborted it.
        await sink.commit(expected.epoch);
        // Committed: run at once. Nothing after run() can fail before Running, so that an Error
        // frame always means the guest never ran here.
        killAgentAt('destination-commit');
        const resumedAt = await sink.run(restored);
        const now = performance.now();
        writer.send(Frame.Running, { restoreMs: resumedAt - started, sinceResumeMs: now - resumedAt });
        await writer.flush().catch(() => undefined); // the source may already be gone: we run anyway
        if (lazy) {
          killAgentSoon('destination-post-copy');
          writer.send(Frame.Resident, { stats: await (await lazy).resident });
        }
        session.on({ type: 'resident' });
        socket.end();
        return;
      } else if (type === Frame.Abort) {
        throw new ProtocolError(`the source aborted: ${decode(FramePayload.Abort, payload).reason}`);
      } else {
        throw unexpected(frame);
      }
    }
  } catch (error) {
    if (session.state !== 'failed') session.on({ type: 'failed', reason: (error as Error).message });
    // Tells the source why, unless the channel is gone already.
    if (!(error instanceof ChannelClosedError)) writer.send(Frame.Error, { message: (error as Error).message });
    socket.end();
    throw error;
  }
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

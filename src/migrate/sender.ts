import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ContainerState } from '../container/container.js';
import type { DirtyTracker } from './dirty/tracker.js';
import { DirectorySender } from './files.js';
import { MigrationError } from './errors.js';
import { Frame, FrameReader, FrameWriter, json, maxPagesPayload } from './protocol.js';

export type MigrationMode = 'stop-copy' | 'pre-copy' | 'auto';
export const migrationModes: MigrationMode[] = ['stop-copy', 'pre-copy', 'auto'];

/** What the sender needs of the container it moves (its process owns the guest thread). */
export interface MigrationSource {
  /** A view of the whole live linear memory (it may grow between calls). */
  memory(): Uint8Array;
  stop(): Promise<void>;
  capture(): Promise<ContainerState>;
  resume(): void;
  /** Host paths of the preopened directories, in preopen order. */
  directories: string[];
  /** Everything the container printed so far (read once it is stopped). */
  readLog(): Buffer;
  tracker(memory: Uint8Array): DirtyTracker;
}

export interface MigrationTarget {
  host: string;
  port: number;
  ticket: string;
  /** Asks the destination's agent whether the container runs there (after a lost Running answer). */
  confirmRunning(): Promise<boolean>;
}

export interface RoundReport {
  round: number;
  bytes: number;
  ms: number;
}

export interface MigrationReport {
  mode: Exclude<MigrationMode, 'auto'>;
  dirtyTracking: string;
  memoryBytes: number;
  /** Bytes of memory, files and log sent. */
  sentBytes: number;
  rounds: RoundReport[];
  /** From the guest stopping on the source to it running on the destination. */
  downtimeMs: number;
  /** What the downtime was spent on. */
  stopCopyMs: { stop: number; finalRound: number; restore: number };
  totalMs: number;
}

export interface MigrationProgress {
  phase: 'connecting' | 'pre-copy' | 'stop-copy' | 'committing';
  round?: number;
  sentBytes: number;
  memoryBytes: number;
}

export interface SendOptions {
  mode: MigrationMode;
  /** Pre-copy stops after this many rounds even if it does not converge. */
  maxRounds?: number;
  onProgress?: (progress: MigrationProgress) => void;
}

/** Below this, pre-copy has nothing to gain over a plain stop-and-copy. */
const autoPreCopyBytes = 8 << 20;
/** Pre-copy is done when a round is this small (a few ms of transfer)... */
const convergedBytes = 2 << 20;
/** ...or no longer shrinks by this factor (the guest writes as fast as we send). */
const minShrink = 0.8;

/**
 * Moves a running container to another node over the data channel. Pre-copy sends memory in
 * rounds while the guest runs, then stops it for a last round of dirty pages plus its state;
 * stop-copy stops it first. Two-phase commit: the source keeps (and on any failure resumes) its
 * copy until the destination reports the guest running there.
 */
export async function migrateOut(source: MigrationSource, target: MigrationTarget, options: SendOptions): Promise<MigrationReport> {
  const started = performance.now();
  const initialBytes = source.memory().length;
  const mode = options.mode === 'auto' ? (initialBytes >= autoPreCopyBytes ? 'pre-copy' : 'stop-copy') : options.mode;
  const progress = (phase: MigrationProgress['phase'], round?: number) =>
    options.onProgress?.({ phase, round, sentBytes, memoryBytes: source.memory().length });
  let sentBytes = 0;
  progress('connecting');
  const socket = await open(target);
  const writer = new FrameWriter(socket);
  const reader = new FrameReader(socket);
  let stopped = false;
  let committing = false;
  let tracker: DirtyTracker | undefined;
  try {
    writer.send(Frame.Hello, { ticket: target.ticket, memoryBytes: initialBytes });
    await reader.expect(Frame.Ready);
    tracker = source.tracker(source.memory());
    const files = new DirectorySender(source.directories);
    const rounds: RoundReport[] = [];
    const sendRound = async (round: number, phase: MigrationProgress['phase']) => {
      const roundStarted = performance.now();
      const memory = source.memory();
      const ranges = tracker!.scan(memory, { stopped: phase === 'stop-copy' });
      writer.send(Frame.Round, { round, memoryBytes: memory.length });
      const hash = createHash('sha256');
      let bytes = 0;
      let reported = 0;
      for (const range of ranges) {
        for (let at = 0; at < range.bytes.length; at += maxPagesPayload) {
          const piece = range.bytes.subarray(at, at + maxPagesPayload);
          const offset = Buffer.allocUnsafe(4);
          offset.writeUInt32LE(range.offset + at);
          hash.update(offset).update(piece);
          writer.sendParts(Frame.Pages, [offset, piece]);
          bytes += piece.length;
          sentBytes += piece.length;
          if (sentBytes - reported >= 64 << 20) {
            reported = sentBytes;
            await writer.flush(); // backpressure, and progress that means something
            progress(phase, round);
          }
        }
      }
      writer.send(Frame.RoundEnd, { sha256: hash.digest('hex'), bytes });
      sentBytes += files.send(writer);
      await reader.expect(Frame.RoundAck);
      rounds.push({ round, bytes, ms: performance.now() - roundStarted });
      progress(phase, round);
      return bytes;
    };

    let round = 1;
    if (mode === 'pre-copy') {
      const maxRounds = options.maxRounds ?? 10;
      let previous = Infinity;
      for (; round <= maxRounds; round++) {
        const bytes = await sendRound(round, 'pre-copy');
        if (round > 1 && (bytes <= convergedBytes || bytes > previous * minShrink)) {
          round++;
          break;
        }
        previous = bytes;
      }
    }
    const stopRequested = performance.now();
    await source.stop();
    stopped = true;
    const stoppedAt = performance.now();
    const state = await source.capture();
    await sendRound(round, 'stop-copy');
    const log = source.readLog();
    writer.send(Frame.Log, log);
    writer.send(Frame.State, { state });
    sentBytes += log.length;
    const finalSent = performance.now();
    const prepared = json<{ restoreMs: number }>(await reader.expect(Frame.Prepared));
    progress('committing');
    committing = true;
    writer.send(Frame.Commit, {});
    try {
      await reader.expect(Frame.Running);
    } catch (error) {
      if (!(await target.confirmRunning().catch(() => false))) throw error;
    }
    const running = performance.now();
    socket.destroy();
    return {
      mode,
      dirtyTracking: tracker.method,
      memoryBytes: source.memory().length,
      sentBytes,
      rounds,
      downtimeMs: running - stoppedAt,
      stopCopyMs: { stop: stoppedAt - stopRequested, finalRound: finalSent - stoppedAt, restore: prepared.restoreMs },
      totalMs: running - started,
    };
  } catch (error) {
    if (!committing) writer.send(Frame.Abort, { reason: (error as Error).message });
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
    if (stopped) source.resume();
    throw new MigrationError(`migration failed, the container keeps running here: ${(error as Error).message}`);
  } finally {
    tracker?.close();
  }
}

function open(target: MigrationTarget): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: target.host, port: target.port, noDelay: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', (error) => reject(new MigrationError(`cannot reach the destination's data channel ${target.host}:${target.port}: ${error.message}`)));
  });
}

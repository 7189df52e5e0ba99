import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ContainerState } from '../container/container.js';
import type { LazyRestoreStats } from '../native/addon.js';
import {
  encodeMissing,
  Frame,
  FramePayload,
  FrameReader,
  FrameWriter,
  maxPagesPayload,
  PeerError,
} from '../protocol/data-channel.js';
import { decode, ProtocolError } from '../protocol/framing.js';
import type { DirtyTracker } from './dirty/tracker.js';
import { MigrationError } from './errors.js';
import { DirectorySender } from './files.js';
import { allGranules, granuleRanges, openPageChannels, PageServer, rangeBytes } from './post-copy.js';

export type MigrationMode = 'stop-copy' | 'pre-copy' | 'post-copy' | 'pre-post' | 'auto';
export const migrationModes: MigrationMode[] = ['stop-copy', 'pre-copy', 'post-copy', 'pre-post', 'auto'];
/** Modes in which the destination runs the guest before all of its memory arrived. */
export const postCopyModes: MigrationMode[] = ['post-copy', 'pre-post'];

/** What the sender needs of the container it moves (its process owns the guest thread). */
export interface MigrationSource {
  /** A view of the whole live linear memory (it may grow between calls). */
  memory(): Uint8Array;
  /** Resolves with the moment the guest stopped (performance.now() scale). */
  stop(): Promise<number>;
  /** The stopped guest's state; may be called right after stop(), before that resolves. */
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
  /** Post-copy: from the guest running at the destination until all of its memory was there. */
  postCopy?: PostCopyReport;
  /** From the start until the destination holds everything (the source's copy is gone). */
  totalMs: number;
}

export interface PostCopyReport {
  /** Memory the destination lacked when the guest started there. */
  missingBytes: number;
  /** Of it: sent because the guest faulted on it, and pushed in the background. */
  requestedBytes: number;
  pushedBytes: number;
  residentMs: number;
  /** Faults on missing pages at the destination, and how long one waited for its page. */
  faults: number;
  faultWaitMsMean: number;
  faultWaitMsMax: number;
}

export interface MigrationProgress {
  phase: 'connecting' | 'pre-copy' | 'stop-copy' | 'post-copy';
  round?: number;
  sentBytes: number;
  memoryBytes: number;
}

export interface SendOptions {
  mode: MigrationMode;
  /** Pre-copy stops after this many rounds even if it does not converge. */
  maxRounds?: number;
  /** Whether the destination can run the guest before its memory arrived (for 'auto'). */
  destinationLazyRestore?: boolean;
  onProgress?: (progress: MigrationProgress) => void;
}

/** The largest frame the destination sends (its answers are small JSON). */
const maxAnswerBytes = 1 << 20;
/** Below this, pre-copy has nothing to gain over a plain stop-and-copy. */
const autoPreCopyBytes = 8 << 20;
/** From this size, 'auto' prefers one pre-copy round then post-copy where the destination can. */
const autoPostCopyBytes = 128 << 20;
/** Pre-copy is done when a round is this small (a few ms of transfer)... */
const convergedBytes = 2 << 20;
/** ...or no longer shrinks by this factor (the guest writes as fast as we send). */
const minShrink = 0.8;

function chooseMode(
  requested: MigrationMode,
  memoryBytes: number,
  destinationLazyRestore: boolean,
): Exclude<MigrationMode, 'auto'> {
  if (requested !== 'auto') return requested;
  if (memoryBytes < autoPreCopyBytes) return 'stop-copy';
  return destinationLazyRestore && memoryBytes >= autoPostCopyBytes ? 'pre-post' : 'pre-copy';
}

/**
 * Moves a running container to another node over the data channel. Pre-copy sends memory in
 * rounds while the guest runs, then stops it for a last round of dirty pages plus its state;
 * stop-copy stops it first. Post-copy sends only the state (pre-post: after one pre-copy round)
 * and the destination runs the guest at once, fetching the missing pages over a second
 * connection while the rest is pushed. Two-phase commit: the source keeps (and on any failure,
 * a lost destination during post-copy included, resumes) its copy until the destination reports
 * the guest running there with all of its memory.
 */
export async function migrateOut(
  source: MigrationSource,
  target: MigrationTarget,
  options: SendOptions,
): Promise<MigrationReport> {
  const started = performance.now();
  const initialBytes = source.memory().length;
  const mode = chooseMode(options.mode, initialBytes, options.destinationLazyRestore ?? false);
  const lazy = postCopyModes.includes(mode);
  let pages: PageServer | undefined;
  // Nothing is reported while the guest is stopped: each process a progress line wakes (agent,
  // CLI) competes with the migration for the CPU, and the downtime is a few milliseconds.
  let quiet = false;
  const progress = (phase: MigrationProgress['phase'], round?: number) => {
    if (!quiet)
      options.onProgress?.({
        phase,
        round,
        sentBytes: sentBytes + (pages?.sentBytes ?? 0),
        memoryBytes: source.memory().length,
      });
  };
  let sentBytes = 0;
  progress('connecting');
  const socket = await open(target);
  const writer = new FrameWriter(socket);
  // The destination's frames are small JSON answers.
  const reader = new FrameReader(socket, undefined, { maxPayload: maxAnswerBytes });
  let stopped = false;
  let committing = false;
  let ranThere = false;
  let tracker: DirtyTracker | undefined;
  try {
    // In post-copy proper, all of the memory announced here will be missing: the destination sets
    // its lazy restore up over it before it answers Ready, out of the downtime.
    writer.send(Frame.Hello, {
      ticket: target.ticket,
      memoryBytes: initialBytes,
      postCopy: lazy,
      wholeMemory: mode === 'post-copy',
    });
    // Opened before the stop, so that they cost no downtime.
    const channels = lazy ? openPageChannels(target.host, target.port, target.ticket) : undefined;
    channels?.catch(() => undefined);
    decode(FramePayload.Ready, await reader.expect(Frame.Ready));
    if (mode !== 'post-copy') tracker = source.tracker(source.memory());
    const files = new DirectorySender(source.directories);
    const rounds: RoundReport[] = [];
    /** Sends the pages written since the previous round (or the `only` ones) and the changed files. */
    const sendRound = async (
      round: number,
      phase: MigrationProgress['phase'],
      only?: { offset: number; bytes: Uint8Array }[],
    ) => {
      const roundStarted = performance.now();
      const memory = source.memory();
      const ranges = only ?? tracker!.scan(memory, { stopped: phase === 'stop-copy' });
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
      writer.send(Frame.RoundEnd, { sha256: hash.digest('hex'), bytes, final: phase === 'stop-copy' });
      sentBytes += files.send(writer);
      // The final (stop-copy) round is not acknowledged: the destination checks it before it
      // restores the state, and answers Error instead of Running if it does not check out.
      if (phase !== 'stop-copy') {
        const ack = decode(FramePayload.RoundAck, await reader.expect(Frame.RoundAck));
        if (ack.round !== round) throw new ProtocolError(`round ${round} acknowledged as round ${ack.round}`);
      }
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
    } else if (mode === 'pre-post') {
      await sendRound(round++, 'pre-copy');
    }
    progress('stop-copy', round);
    quiet = true;
    const stopRequested = performance.now();
    const stopping = source.stop();
    // Asked for at once: the guest captures its state as soon as it stopped, no extra round trip.
    const capturing = source.capture();
    capturing.catch(() => undefined);
    const stoppedAt = await stopping;
    stopped = true;
    let missingBytes = 0;
    if (lazy) {
      // What the destination lacks. post-copy: the memory announced in Hello (set up there
      // already); what the guest grew since, rarely anything, goes now as a last round of pages,
      // outside the lazy restore. pre-post: what was written since the pre-copy round, announced
      // first so that the destination sets its lazy restore up while the rest is on its way.
      const memory = source.memory();
      const missing =
        mode === 'post-copy'
          ? allGranules(initialBytes)
          : granuleRanges(
              tracker!.scan(memory, { stopped: true }).map((r) => ({ offset: r.offset, length: r.bytes.length })),
              memory.length,
            );
      missingBytes = rangeBytes(missing);
      pages = new PageServer(await channels!, memory, missing);
      if (mode === 'pre-post') writer.send(Frame.PostCopy, encodeMissing(memory.length, missing));
      const grown = mode === 'post-copy' && memory.length > initialBytes;
      if (grown) await sendRound(round, 'stop-copy', [{ offset: initialBytes, bytes: memory.subarray(initialBytes) }]);
      else sentBytes += files.send(writer);
    } else {
      await sendRound(round, 'stop-copy');
    }
    const state = await capturing;
    const log = source.readLog();
    writer.send(Frame.Log, log);
    writer.send(Frame.State, { state });
    sentBytes += log.length;
    const finalSent = performance.now();
    // The commit point: with the whole state sent, the destination runs the guest as soon as it is
    // restored (no extra round trip in the downtime). From here an Error frame still means it never
    // ran, but a lost connection is ambiguous: ask.
    committing = true;
    let restoreMs = NaN;
    // How long before its Running frame the destination let the guest go: not downtime.
    let sinceResumeMs = 0;
    try {
      ({ restoreMs, sinceResumeMs } = decode(FramePayload.Running, await reader.expect(Frame.Running)));
    } catch (error) {
      if (error instanceof PeerError) throw error;
      if (!(await target.confirmRunning().catch(() => false))) throw error;
    }
    ranThere = true;
    quiet = false;
    const running = performance.now() - sinceResumeMs;
    let postCopy: PostCopyReport | undefined;
    if (pages) {
      progress('post-copy');
      pages.startPushing();
      const ticker = setInterval(() => progress('post-copy'), 250);
      const [served, resident] = await Promise.all([
        pages.done,
        reader.expect(Frame.Resident).then((payload): LazyRestoreStats => decode(FramePayload.Resident, payload).stats),
      ])
        .catch((error: Error) => {
          // Whichever connection noticed first: the destination is gone before it had everything.
          throw new MigrationError(`the destination was lost during post-copy (${error.message})`);
        })
        .finally(() => clearInterval(ticker));
      sentBytes += served.pushedBytes + served.requestedBytes;
      postCopy = {
        missingBytes,
        requestedBytes: served.requestedBytes,
        pushedBytes: served.pushedBytes,
        residentMs: performance.now() - running,
        faults: resident.faults,
        faultWaitMsMean: resident.faultWaitMsMean,
        faultWaitMsMax: resident.faultWaitMsMax,
      };
    }
    socket.destroy();
    return {
      mode,
      dirtyTracking: tracker?.method ?? 'none',
      memoryBytes: source.memory().length,
      sentBytes,
      rounds,
      downtimeMs: running - stoppedAt,
      stopCopyMs: { stop: stoppedAt - stopRequested, finalRound: finalSent - stoppedAt, restore: restoreMs },
      ...(postCopy ? { postCopy } : {}),
      totalMs: performance.now() - started,
    };
  } catch (error) {
    if (!committing) writer.send(Frame.Abort, { reason: (error as Error).message });
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
    pages?.close();
    if (stopped) source.resume();
    const copy = ranThere ? ' from its copy as of the stop (what it did at the destination is lost)' : '';
    throw new MigrationError(`migration failed, the container keeps running here${copy}: ${(error as Error).message}`);
  } finally {
    tracker?.close();
  }
}

function open(target: MigrationTarget): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: target.host, port: target.port, noDelay: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', (error) =>
      reject(
        new MigrationError(
          `cannot reach the destination's data channel ${target.host}:${target.port}: ${error.message}`,
        ),
      ),
    );
  });
}

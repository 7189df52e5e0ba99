import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ContainerState } from '../container/container.js';
import type { LazyRestoreStats } from '../native/addon.js';
import {
  dataChannelVersion,
  encodeMissing,
  Frame,
  FramePayload,
  FrameReader,
  FrameWriter,
  maxPagesPayload,
  PeerError,
} from '../protocol/data-channel.js';
import { decode, ProtocolError } from '../protocol/framing.js';
import { type ConvergenceDecision, decideAfterRound } from './convergence.js';
import type { DirtyRange, DirtyTracker } from './dirty/tracker.js';
import { MigrationError, MigrationUnsettledError } from './errors.js';
import { DirectorySender } from './files.js';
import {
  allGranules,
  type GranuleRanges,
  granuleRanges,
  openPageChannels,
  type PageChannels,
  PageServer,
  rangeBytes,
} from './post-copy.js';
import { type FenceAnswer, type SourceDecision, SourceSession } from './session.js';

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
  /** The container's epoch at the destination (this migration raised it). */
  epoch: number;
  /**
   * After a lost Running answer: asks the destination's agent to abort `epoch` (docs/fencing.md).
   * 'aborted': the guest never ran there and never will; 'ran': it did. Rejects when the agent
   * cannot be asked.
   */
  fence(): Promise<FenceAnswer>;
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
  /** Pre-copy: why it stopped sending rounds (what decideAfterRound said last). */
  decision?: string;
  /** From the start until the destination holds everything (the source's copy is gone). */
  totalMs: number;
}

export interface PostCopyReport {
  /** Memory the destination lacked when the guest started there. */
  missingBytes: number;
  /** Of it: sent because the guest faulted on it, and pushed in the background. */
  requestedBytes: number;
  pushedBytes: number;
  /** Of the pushed: the hot set (written most recently on the source), pushed first. */
  hotBytes?: number;
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
  /** Pre-copy: what it does after the round just sent, and why. */
  decision?: string;
}

export interface SendOptions {
  mode: MigrationMode;
  /** Pre-copy stops after this many rounds even if it does not converge. */
  maxRounds?: number;
  /** Whether the destination can run the guest before its memory arrived (for 'auto'). */
  destinationLazyRestore?: boolean;
  /**
   * Pre-copy (also as picked by 'auto') that sees it cannot converge ends in post-copy instead of
   * a final round, where the destination can take it (default false: the final round). Opt-in: a
   * guest in post-copy is lost if the source dies meanwhile.
   */
  postCopyFallback?: boolean;
  /**
   * Post-copy: push the pages the guest wrote most recently first, right after its state (default
   * true); false pushes in address order only (the benchmark's baseline).
   */
  hotFirst?: boolean;
  onProgress?: (progress: MigrationProgress) => void;
  /** Replaces answerTimeouts (tests). */
  answerTimeouts?: typeof answerTimeouts;
}

/**
 * How long the destination may take to answer on the data channel before the source gives up on
 * it (docs/fencing.md, "Bounded waits"): Ready comes after it compiled the module (slow under
 * emulation: as long as an agent may take to start a container process); a round's ack, after
 * the last bytes of the round arrived (the sender waits for its socket to drain as it writes);
 * Running, after it restored the guest. Silence past these is a failure like a lost connection:
 * before the commit the guest resumes here, after it the fence decides.
 */
export const answerTimeouts = { ready: 180_000, answer: 60_000 };

/** The largest frame the destination sends (its answers are small JSON). */
const maxAnswerBytes = 1 << 20;
/** Below this, pre-copy has nothing to gain over a plain stop-and-copy. */
const autoPreCopyBytes = 8 << 20;
/** From this size, 'auto' prefers one pre-copy round then post-copy where the destination can. */
const autoPostCopyBytes = 128 << 20;
/**
 * Post-copy proper has no rounds: a tracker started at the Hello finds the pages written until the
 * stop (the hot set), and the stop waits until it watched at least this long.
 */
const hotWindowMs = 50;

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
  const destinationLazy = options.destinationLazyRestore ?? false;
  let mode = chooseMode(options.mode, initialBytes, destinationLazy);
  // Allowed, onto a node that can receive post-copy: pre-copy may end in post-copy, if it sees it
  // cannot converge. Announced in the Hello (the page channels are opened) either way.
  const mayGoLazy = (options.postCopyFallback ?? false) && destinationLazy && mode === 'pre-copy';
  const announcedLazy = postCopyModes.includes(mode) || mayGoLazy;
  let pages: PageServer | undefined;
  const session = new SourceSession(target.epoch);
  // Nothing is reported while the guest is stopped: each process a progress line wakes (agent,
  // CLI) competes with the migration for the CPU, and the downtime is a few milliseconds.
  const progress = (phase: MigrationProgress['phase'], round?: number, decision?: string) => {
    if (session.state !== 'stopped' && session.state !== 'state-sent')
      options.onProgress?.({
        phase,
        round,
        sentBytes: sentBytes + (pages?.sentBytes ?? 0),
        memoryBytes: source.memory().length,
        ...(decision ? { decision } : {}),
      });
  };
  let sentBytes = 0;
  progress('connecting');
  const socket = await open(target);
  const writer = new FrameWriter(socket);
  // The destination's frames are small JSON answers.
  const reader = new FrameReader(socket, undefined, { maxPayload: maxAnswerBytes });
  const limits = options.answerTimeouts ?? answerTimeouts;
  /** The destination's next frame, which must be `type` and come within `ms`. */
  const answer = (type: Frame, ms: number) => {
    let timer: NodeJS.Timeout | undefined;
    const silence = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new MigrationError(`the destination did not answer (${Frame[type]}) within ${ms / 1000} s`));
        socket.destroy();
      }, ms);
    });
    return Promise.race([reader.expect(type), silence]).finally(() => clearTimeout(timer));
  };
  /** Why the data channel was given up for silence, if it was (the writes then fail less clearly). */
  let stalled: MigrationError | undefined;
  let tracker: DirtyTracker | undefined;
  let channels: ReturnType<typeof openPageChannels> | undefined;
  try {
    // In post-copy proper, all of the memory announced here will be missing: the destination sets
    // its lazy restore up over it before it answers Ready, out of the downtime.
    writer.send(Frame.Hello, {
      ticket: target.ticket,
      version: dataChannelVersion,
      epoch: target.epoch,
      memoryBytes: initialBytes,
      postCopy: announcedLazy,
      wholeMemory: mode === 'post-copy',
    });
    // Opened before the stop, so that they cost no downtime.
    channels = announcedLazy ? openPageChannels(target.host, target.port, target.ticket) : undefined;
    channels?.catch(() => undefined);
    // Post-copy proper sends no round, but an exact tracker started now tells which pages the guest
    // writes until the stop: its hot set, pushed first. (Comparing needs a copy of all memory: no.)
    const hotFirst = options.hotFirst ?? true;
    let trackerStarted = performance.now();
    if (mode !== 'post-copy' || hotFirst) {
      tracker = source.tracker(source.memory());
      trackerStarted = performance.now();
      if (mode === 'post-copy' && !tracker.written) {
        tracker.close();
        tracker = undefined;
      }
    }
    const ready = decode(FramePayload.Ready, await answer(Frame.Ready, limits.ready));
    // From here until the State goes, the destination takes bytes as fast as the network allows:
    // a channel on which nothing moves for as long as an answer may take is a destination gone.
    socket.setTimeout(limits.answer, () => {
      stalled = new MigrationError(`the destination took nothing for ${limits.answer / 1000} s`);
      socket.destroy();
    });
    const negotiated = session.on({ type: 'ready', peerVersion: ready.version });
    if (negotiated.do === 'roll-back') throw new MigrationError(negotiated.reason);
    const files = new DirectorySender(source.directories);
    const rounds: RoundReport[] = [];
    /** Sends `ranges` as a round (the final one in phase 'stop-copy'), and the changed files. */
    const sendRound = async (round: number, phase: MigrationProgress['phase'], ranges: DirtyRange[]) => {
      const roundStarted = performance.now();
      const memory = source.memory();
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
        const ack = decode(FramePayload.RoundAck, await answer(Frame.RoundAck, limits.answer));
        if (ack.round !== round) throw new ProtocolError(`round ${round} acknowledged as round ${ack.round}`);
        session.on({ type: 'round-acked' });
      }
      rounds.push({ round, bytes, ms: performance.now() - roundStarted });
      if (phase !== 'pre-copy') progress(phase, round);
    };

    let round = 1;
    /** Found written by the last scan of the running guest and not sent: they go after the stop. */
    let pending: DirtyRange[] = [];
    let decision: ConvergenceDecision | undefined;
    if (mode === 'pre-copy') {
      const maxRounds = options.maxRounds ?? 10;
      // Each round's scan comes before the decision: the dirty set it finds is the next round, or
      // (when the rounds no longer shrink) goes after the stop instead of being sent twice.
      let next = tracker!.scan(source.memory());
      for (;;) {
        await sendRound(round, 'pre-copy', next);
        next = tracker!.scan(source.memory());
        decision = decideAfterRound({
          rounds,
          dirtyBytes: rangesBytes(next),
          maxRounds,
          postCopyAllowed: mayGoLazy,
        });
        progress('pre-copy', round, decision.reason);
        round++;
        if (decision.next !== 'round') break;
      }
      pending = next;
      if (decision.next === 'post-copy') mode = 'pre-post';
    } else if (mode === 'pre-post') {
      await sendRound(round++, 'pre-copy', tracker!.scan(source.memory()));
    }
    const lazy = postCopyModes.includes(mode);
    if (!lazy) {
      // Not needed after all: the destination drops them when the guest runs there.
      dropChannels(channels);
    }
    if (mode === 'post-copy' && tracker) {
      const watched = performance.now() - trackerStarted;
      if (watched < hotWindowMs) await new Promise((resolve) => setTimeout(resolve, hotWindowMs - watched));
    }
    progress('stop-copy', round);
    const stopRequested = performance.now();
    const stopping = source.stop();
    // Asked for at once: the guest captures its state as soon as it stopped, no extra round trip.
    const capturing = source.capture();
    capturing.catch(() => undefined);
    const stoppedAt = await stopping;
    session.on({ type: 'stopped' });
    let missingBytes = 0;
    if (lazy) {
      // What the destination lacks. post-copy: the memory announced in Hello (set up there
      // already); what the guest grew since, rarely anything, goes now as a last round of pages,
      // outside the lazy restore. pre-post: what was written since the last pre-copy round
      // (found before the stop and after), announced first so that the destination sets its lazy
      // restore up while the rest is on its way.
      const memory = source.memory();
      let missing: GranuleRanges;
      let hot: GranuleRanges | undefined;
      if (mode === 'post-copy') {
        missing = allGranules(initialBytes);
        // Written between the Hello and the stop (within what the destination lacks).
        const written = tracker?.written?.(memory).filter((r) => r.offset < initialBytes);
        if (written?.length) hot = granuleRanges(written, initialBytes);
      } else {
        const recent = tracker!.scan(memory, { stopped: true });
        const spans = (ranges: DirtyRange[]) => ranges.map((r) => ({ offset: r.offset, length: r.bytes.length }));
        missing = granuleRanges(mergeSpans(spans(pending), spans(recent)), memory.length);
        // Written since the last scan of the running guest: the most recent writes.
        if (hotFirst && recent.length) hot = granuleRanges(spans(recent), memory.length);
      }
      missingBytes = rangeBytes(missing);
      pages = new PageServer(await channels!, memory, missing, hot);
      if (mode !== 'post-copy') writer.send(Frame.PostCopy, encodeMissing(memory.length, missing));
      const grown = mode === 'post-copy' && memory.length > initialBytes;
      if (grown) await sendRound(round, 'stop-copy', [{ offset: initialBytes, bytes: memory.subarray(initialBytes) }]);
      else sentBytes += files.send(writer);
    } else {
      // The final round: what the last scan found (sent now from the stopped guest's memory, as it
      // is now) and what was written since.
      const memory = source.memory();
      const recent = tracker!.scan(memory, { stopped: true });
      await sendRound(
        round,
        'stop-copy',
        pending.length === 0
          ? recent
          : mergeSpans(
              pending.map((r) => ({ offset: r.offset, length: r.bytes.length })),
              recent.map((r) => ({ offset: r.offset, length: r.bytes.length })),
            ).map(({ offset, length }) => ({ offset, bytes: memory.subarray(offset, offset + length) })),
      );
    }
    const state = await capturing;
    const log = source.readLog();
    writer.send(Frame.Log, log);
    writer.send(Frame.State, { state, epoch: target.epoch });
    socket.setTimeout(0); // Running has a limit of its own; Resident waits on the page channels
    // The commit point: with the whole state sent, the destination runs the guest as soon as it is
    // restored (no extra round trip in the downtime). From here an Error frame still means it never
    // ran, but a lost connection is ambiguous: the session fences (see settle()).
    session.on({ type: 'state-sent', lazy: pages !== undefined });
    sentBytes += log.length;
    const finalSent = performance.now();
    let restoreMs = NaN;
    // How long before its Running frame the destination let the guest go: not downtime.
    let sinceResumeMs = 0;
    try {
      // The hot set goes at once, while the destination restores the guest: it is what the guest
      // touches first, and each page of it asked for by a fault would cost a round trip.
      pages?.pushHot();
      ({ restoreMs, sinceResumeMs } = decode(FramePayload.Running, await answer(Frame.Running, limits.answer)));
      session.on({ type: 'running' });
    } catch (error) {
      const reason = (error as Error).message;
      // A refusal means the guest never ran there; anything else is the fence's to decide.
      const decision = session.on({ type: 'failed', reason, refusedByPeer: error instanceof PeerError });
      if (decision.do === 'fence') await settle(session, target);
      if (session.failed) throw error;
    }
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
        .then((done) => {
          session.on({ type: 'resident' });
          return done;
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
        ...(served.hotBytes ? { hotBytes: served.hotBytes } : {}),
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
      ...(decision ? { decision: decision.reason } : {}),
      totalMs: performance.now() - started,
    };
  } catch (caught) {
    const error = stalled ?? caught;
    const reason = (error as Error).message;
    if (!session.committed) writer.send(Frame.Abort, { reason });
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
    pages?.close();
    if (!pages) dropChannels(channels);
    // Failures after the commit were settled where they happened (the fence); these are before it,
    // or in post-copy, where the destination's guest cannot go on without the memory here.
    const decision = session.failed ? session.decision : session.on({ type: 'failed', reason, refusedByPeer: false });
    if (decision.do === 'stay-stopped') throw new MigrationUnsettledError(decision.reason, session);
    if (decision.do !== 'roll-back')
      throw new Error(`session bug: a failure in state ${session.state} decided ${decision.do}`);
    if (decision.resume) source.resume();
    const copy = decision.ranThere ? ' from its copy as of the stop (what it did at the destination is lost)' : '';
    throw new MigrationError(`migration failed, the container keeps running here${copy}: ${decision.reason}`, {
      cause: error,
    });
  } finally {
    tracker?.close();
  }
}

/**
 * An unsettled session asks the destination's agent to abort its epoch, once; the answer (or that
 * there was none) goes into the session, which moves on: rolled back, ran there, or still unsettled.
 */
export async function settle(session: SourceSession, target: Pick<MigrationTarget, 'fence'>): Promise<SourceDecision> {
  let answer: FenceAnswer | 'unreachable';
  let reason: string | undefined;
  try {
    answer = await target.fence();
  } catch (error) {
    answer = 'unreachable';
    reason = (error as Error).message;
  }
  return session.on({ type: 'fence-answer', answer, reason });
}

/** Closes page channels that are not used (once they are open). */
function dropChannels(channels: Promise<PageChannels> | undefined): void {
  channels
    ?.then(({ push, fault }) => {
      push.destroy();
      fault.destroy();
    })
    .catch(() => undefined);
}

function rangesBytes(ranges: DirtyRange[]): number {
  let bytes = 0;
  for (const range of ranges) bytes += range.bytes.length;
  return bytes;
}

/** The union of two lists of spans, each in increasing order: in increasing order, overlaps and neighbours merged. */
export function mergeSpans(
  a: { offset: number; length: number }[],
  b: { offset: number; length: number }[],
): { offset: number; length: number }[] {
  const all = [...a, ...b].sort((x, y) => x.offset - y.offset);
  const out: { offset: number; length: number }[] = [];
  for (const { offset, length } of all) {
    const last = out[out.length - 1];
    if (last && offset <= last.offset + last.length) last.length = Math.max(last.length, offset + length - last.offset);
    else out.push({ offset, length });
  }
  return out;
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

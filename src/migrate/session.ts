/**
 * The migration as data: each side's states, the transitions allowed between them (one table per
 * side), events in and decisions out. No sockets, threads or timers: sender.ts, receiver.ts and the
 * agent are adapters that feed events in and carry the decisions out, so the rules that keep a
 * container running exactly once are here, and test/unit/session.test.ts checks them against
 * injected faults. The model is written down in docs/migration-session.md and docs/fencing.md.
 */
import { RoamError } from '../platform/errors.js';
import { dataChannelVersion } from '../protocol/data-channel.js';

/** An event the current state does not allow: the peer (or the adapter) broke the protocol's order. */
export class SessionOrderError extends RoamError {
  readonly code = 'ROAM_SESSION_ORDER';
}

/** A peer whose data-channel protocol has another major version. */
export class ProtocolVersionError extends RoamError {
  readonly code = 'ROAM_PROTOCOL_VERSION';
}

/** A frame of another epoch than the one this destination was prepared for (an older one: fenced off). */
export class StaleEpochError extends RoamError {
  readonly code = 'ROAM_EPOCH_STALE';
}

// ---------------------------------------------------------------------------------------------
// Protocol version (the rule is at dataChannelVersion)

function majorOf(version: string | undefined): number {
  return version === undefined ? 0 : Number(version.split('.')[0]);
}

/** Throws ProtocolVersionError unless `peer` may talk to this side (`ours`). */
export function checkProtocolVersion(peer: string | undefined, ours = dataChannelVersion): void {
  if (majorOf(peer) === majorOf(ours)) return;
  throw new ProtocolVersionError(
    `the peer speaks data-channel protocol ${peer ?? '0 (unversioned)'} and this node ${ours}: ` +
      'only the same major version is accepted (update roam on one of the nodes)',
  );
}

// ---------------------------------------------------------------------------------------------
// Source

export type SourceState =
  /** Hello sent, waiting for Ready. */
  | 'negotiating'
  /** Ready received, versions compatible: nothing sent yet, the guest runs here. */
  | 'negotiated'
  /** Rounds of pages while the guest runs here. */
  | 'pre-copy'
  /** The guest is stopped here; its state is not sent (not committed): a failure resumes it. */
  | 'stopped'
  /** State sent: committed to this destination, waiting for Running. */
  | 'state-sent'
  /** The destination runs the guest with all of its memory: the copy here goes (terminal). */
  | 'running-there'
  /** The destination runs the guest and fetches missing memory from here: the copy stays until Resident. */
  | 'post-copy'
  /** Post-copy done: every page is at the destination; the copy here goes (terminal). */
  | 'resident'
  /** The guest runs here again (or never stopped); the destination never ran it, or lost it (terminal). */
  | 'rolled-back'
  /**
   * Stopped here, outcome unknown: State went out and the answer was lost. Left only by the
   * destination agent's answer to a fence (aborted: resume; ran: the copy here goes); while that
   * agent cannot be reached the guest stays stopped (`roam recover` asks again).
   */
  | 'unsettled';

/** What the destination's agent answered when asked to abort an epoch (see EpochFence). */
export type FenceAnswer = 'aborted' | 'ran';

export type SourceEvent =
  | { type: 'ready'; peerVersion: string | undefined }
  | { type: 'round-acked' }
  | { type: 'stopped' }
  /** `lazy`: post-copy, the destination will fetch missing memory from here once it runs. */
  | { type: 'state-sent'; lazy: boolean }
  | { type: 'running' }
  | { type: 'resident' }
  /**
   * Something failed: `refusedByPeer` when the destination's own Error frame said so (it never ran
   * the guest); otherwise a lost connection or a local failure.
   */
  | { type: 'failed'; reason: string; refusedByPeer: boolean }
  /** The destination agent's answer to the fence; `unreachable` when it could not be asked. */
  | { type: 'fence-answer'; answer: FenceAnswer | 'unreachable'; reason?: string };

export type SourceDecision =
  /** Go on with the migration as planned. */
  | { do: 'continue' }
  /**
   * Run the guest here (resume it if stopped); before the commit, tell the destination (Abort).
   * `ranThere`: it ran at the destination meanwhile (post-copy), and what it did there is lost.
   */
  | { do: 'roll-back'; reason: string; resume: boolean; ranThere: boolean }
  /** Ask the destination's agent to abort this epoch; its answer comes back as a fence-answer event. */
  | { do: 'fence'; epoch: number; reason: string }
  /** The destination holds the guest now: the copy here goes. */
  | { do: 'drop-copy' }
  /** The destination runs the guest: serve its missing memory until Resident. */
  | { do: 'serve-pages' }
  /** Nobody can tell whether the destination runs the guest: keep it stopped here. */
  | { do: 'stay-stopped'; reason: string };

type SourceEventType = SourceEvent['type'];

/** Which events each source state allows, and the states they may lead to (the reducer picks one). */
export const sourceTransitions: Record<SourceState, Partial<Record<SourceEventType, SourceState[]>>> = {
  negotiating: { ready: ['negotiated', 'rolled-back'], failed: ['rolled-back'] },
  negotiated: { 'round-acked': ['pre-copy'], stopped: ['stopped'], failed: ['rolled-back'] },
  'pre-copy': { 'round-acked': ['pre-copy'], stopped: ['stopped'], failed: ['rolled-back'] },
  stopped: { 'state-sent': ['state-sent'], failed: ['rolled-back'] },
  'state-sent': { running: ['running-there', 'post-copy'], failed: ['rolled-back', 'unsettled'] },
  'post-copy': { resident: ['resident'], failed: ['rolled-back'] },
  unsettled: { 'fence-answer': ['rolled-back', 'running-there', 'post-copy', 'unsettled'] },
  'running-there': {},
  resident: {},
  'rolled-back': {},
};

/** The source's side of one migration of one container, from its epoch to `epoch` (the destination's). */
export class SourceSession {
  state: SourceState = 'negotiating';
  /** What the last event decided (a failure's decision is carried out where the failure is caught). */
  decision: SourceDecision = { do: 'continue' };
  /** Why the session is where it is, for a rolled-back or unsettled one (shown by `roam ps`). */
  reason: string | undefined;
  /** Post-copy: the destination, once it runs the guest, needs memory from here. */
  private lazy = false;

  constructor(readonly epoch: number) {}

  /** The guest is stopped here (a failure must resume it, or, unsettled, keep it stopped). */
  get guestStopped(): boolean {
    return ['stopped', 'state-sent', 'post-copy', 'unsettled'].includes(this.state);
  }

  /** State went out: from here on an Abort frame means nothing, and only the fence may roll back. */
  get committed(): boolean {
    return ['state-sent', 'running-there', 'post-copy', 'resident', 'unsettled'].includes(this.state);
  }

  /** Rolled back or unsettled: a failure was decided on already. */
  get failed(): boolean {
    return this.state === 'rolled-back' || this.state === 'unsettled';
  }

  on(event: SourceEvent): SourceDecision {
    const allowed = sourceTransitions[this.state][event.type];
    if (!allowed) throw new SessionOrderError(`migration source: ${event.type} is not allowed in state ${this.state}`);
    const from = this.state;
    const [to, decision] = this.decide(event);
    if (!allowed.includes(to)) throw new Error(`session bug: ${from} --${event.type}--> ${to} is not in the table`);
    this.state = to;
    this.decision = decision;
    return decision;
  }

  private decide(event: SourceEvent): [SourceState, SourceDecision] {
    const resume = this.guestStopped;
    switch (event.type) {
      case 'ready':
        try {
          checkProtocolVersion(event.peerVersion);
        } catch (error) {
          return this.rollBack((error as Error).message, resume);
        }
        return ['negotiated', { do: 'continue' }];
      case 'round-acked':
        return ['pre-copy', { do: 'continue' }];
      case 'stopped':
        return ['stopped', { do: 'continue' }];
      case 'state-sent':
        this.lazy = event.lazy;
        return ['state-sent', { do: 'continue' }];
      case 'running':
        return this.ranThere();
      case 'resident':
        return ['resident', { do: 'drop-copy' }];
      case 'failed':
        // Committed, and the destination did not say it refused: it may be running the guest.
        if (this.state === 'state-sent' && !event.refusedByPeer) {
          this.reason = `the destination's answer was lost (${event.reason})`;
          return ['unsettled', { do: 'fence', epoch: this.epoch, reason: this.reason }];
        }
        // In post-copy the destination cannot go on without the pages here: its guest fails.
        return this.rollBack(event.reason, resume);
      case 'fence-answer':
        if (event.answer === 'aborted')
          return this.rollBack(`${this.reason}; the destination aborted epoch ${this.epoch}`, true);
        if (event.answer === 'ran') return this.ranThere();
        this.reason = `stopped here: the destination may run epoch ${this.epoch} and cannot be asked (${event.reason ?? 'unreachable'}); run roam recover once it is reachable`;
        return ['unsettled', { do: 'stay-stopped', reason: this.reason }];
    }
  }

  private ranThere(): [SourceState, SourceDecision] {
    return this.lazy ? ['post-copy', { do: 'serve-pages' }] : ['running-there', { do: 'drop-copy' }];
  }

  private rollBack(reason: string, resume: boolean): [SourceState, SourceDecision] {
    this.reason = reason;
    return ['rolled-back', { do: 'roll-back', reason, resume, ranThere: this.state === 'post-copy' }];
  }
}

// ---------------------------------------------------------------------------------------------
// Destination

export type DestinationState =
  /** Waiting for the source's Hello. */
  | 'listening'
  /** Hello accepted, Ready sent; between rounds. */
  | 'ready'
  /** Inside a round of pages. */
  | 'receiving'
  /** The memory the guest runs with checked out (a final round) or is announced for post-copy. */
  | 'verified'
  /** State accepted: the guest is restored and runs (committed; in post-copy, memory still arriving). */
  | 'running'
  /** Post-copy: every page arrived (terminal). */
  | 'resident'
  /** The migration ended here without the guest running, or lost its source during post-copy (terminal). */
  | 'failed';

export type DestinationEvent =
  | { type: 'hello'; version: string | undefined; epoch: number | undefined; wholeMemory: boolean }
  | { type: 'round'; round: number }
  | { type: 'pages' }
  | { type: 'round-end'; final: boolean }
  | { type: 'file' }
  | { type: 'log' }
  | { type: 'post-copy' }
  | { type: 'state'; epoch: number | undefined }
  /** The memory is complete (non-lazy: Running sent is the end; lazy: every page arrived). */
  | { type: 'resident' }
  | { type: 'failed'; reason: string };

type DestinationEventType = DestinationEvent['type'];

const frameNames: Record<DestinationEventType, string> = {
  hello: 'Hello',
  round: 'Round',
  pages: 'pages',
  'round-end': 'RoundEnd',
  file: 'File',
  log: 'Log',
  'post-copy': 'PostCopy',
  state: 'State',
  resident: 'the end of post-copy',
  failed: 'a failure',
};

/** Which events each destination state allows, and where they lead. */
export const destinationTransitions: Record<
  DestinationState,
  Partial<Record<DestinationEventType, DestinationState>>
> = {
  listening: { hello: 'ready', failed: 'failed' },
  ready: {
    round: 'receiving',
    file: 'ready',
    log: 'ready',
    'post-copy': 'verified',
    state: 'running',
    failed: 'failed',
  },
  receiving: { pages: 'receiving', 'round-end': 'ready', failed: 'failed' },
  verified: { file: 'verified', log: 'verified', state: 'running', failed: 'failed' },
  running: { resident: 'resident', failed: 'failed' },
  resident: {},
  failed: {},
};

/** The destination's side of one migration: refuses what comes out of order or from another epoch. */
export class DestinationSession {
  state: DestinationState = 'listening';
  /** The round whose pages are arriving. */
  round = 0;
  /** Post-copy proper: the whole memory comes lazily, so State may follow Ready without a final round. */
  private wholeMemoryLazy = false;

  /** `epoch`: the one the destination's agent prepared for; frames of any other are refused. */
  constructor(readonly epoch: number) {}

  on(event: DestinationEvent): void {
    const to = destinationTransitions[this.state][event.type];
    if (!to) throw new SessionOrderError(`migration destination: ${this.refusal(event)}`);
    switch (event.type) {
      case 'hello':
        checkProtocolVersion(event.version);
        this.checkEpoch(event.epoch, 'Hello');
        this.wholeMemoryLazy = event.wholeMemory;
        break;
      case 'round':
        this.round = event.round;
        break;
      case 'round-end':
        this.round = 0;
        if (event.final) {
          this.state = 'verified';
          return;
        }
        break;
      case 'state':
        if (this.state === 'ready' && !this.wholeMemoryLazy)
          throw new SessionOrderError('migration destination: State before the final round of memory checked out');
        this.checkEpoch(event.epoch, 'State');
        break;
    }
    this.state = to;
  }

  private checkEpoch(epoch: number | undefined, frame: string): void {
    if (epoch === this.epoch) return;
    const which = epoch === undefined ? 'no epoch' : epoch < this.epoch ? `older epoch ${epoch}` : `epoch ${epoch}`;
    throw new StaleEpochError(`${frame} of ${which} refused: this destination receives epoch ${this.epoch}`);
  }

  /** Why `event` has no place here, in the words of the protocol (its frame's name). */
  private refusal(event: DestinationEvent): string {
    if (event.type === 'round' && this.state === 'verified') return `round ${event.round} began after the final round`;
    if (event.type === 'round' && this.state === 'receiving')
      return `round ${event.round} began inside round ${this.round}`;
    if (event.type === 'pages' || event.type === 'round-end') return `${frameNames[event.type]} outside a round`;
    const where = this.state === 'receiving' ? `inside round ${this.round}` : `in state ${this.state}`;
    return `${frameNames[event.type]} ${where}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Fencing, at the destination's agent

/**
 * The destination agent's record of one container's epochs: the one place that decides, for an
 * epoch, between "the guest may run" (its container process asks before it runs the guest) and
 * "it never will" (the source asks after losing the Running answer). The agent answers both in
 * one thread, so whichever comes first wins and the other learns it.
 */
export class EpochFence {
  private readonly committed = new Set<number>();
  private readonly aborted = new Set<number>();

  /** The container process at the destination asks: may the guest of `epoch` run? */
  commit(epoch: number): boolean {
    if (this.aborted.has(epoch)) return false;
    this.committed.add(epoch);
    return true;
  }

  /**
   * The source asks to abort `epoch`: 'ran' if the guest of that epoch (or a later one: it ran
   * here and moved on) was allowed to run, else the epoch is aborted for good and never runs.
   */
  abort(epoch: number): FenceAnswer {
    if (this.aborted.has(epoch)) return 'aborted';
    // A later epoch exists only if this one ran (here: only this node was sent it).
    if ([...this.committed].some((e) => e >= epoch)) return 'ran';
    this.aborted.add(epoch);
    return 'aborted';
  }

  isAborted(epoch: number): boolean {
    return this.aborted.has(epoch);
  }
}

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { settle } from '../../src/migrate/sender.js';
import {
  DestinationSession,
  type DestinationState,
  destinationTransitions,
  EpochFence,
  SessionOrderError,
  SourceSession,
  type SourceState,
  sourceTransitions,
} from '../../src/migrate/session.js';
import { dataChannelVersion } from '../../src/protocol/data-channel.js';

/**
 * The two sessions of session.ts against each other through an in-memory transport, with the
 * destination agent's EpochFence between them, and a fault injected at every message: no sockets,
 * no guest, milliseconds. The drivers here do what sender.ts and receiver.ts do with the sessions'
 * events and decisions (a stop-copy migration after one pre-copy round).
 */

const epoch = 2;

type Message =
  | { type: 'hello'; version: string; epoch: number }
  | { type: 'ready'; version: string }
  | { type: 'round'; round: number }
  | { type: 'pages' }
  | { type: 'round-end'; final: boolean }
  | { type: 'round-ack' }
  | { type: 'log' }
  | { type: 'state'; epoch: number }
  | { type: 'running' }
  | { type: 'abort' }
  | { type: 'error'; message: string };

type FaultKind = 'drop' | 'delay' | 'duplicate' | 'reorder' | 'stale-replay' | 'destination-crash';
interface Fault {
  /** Index of the message, counted over both directions in the order they were sent. */
  index: number;
  kind: FaultKind;
}

class Closed extends Error {}

/** One direction of the connection. */
class Link {
  private readonly queue: Message[] = [];
  private waiter: (() => void) | undefined;
  closed = false;

  constructor(private readonly wire: Wire) {}

  send(message: Message): void {
    if (!this.closed) this.wire.transmit(this, message);
  }

  deliver(message: Message): void {
    this.queue.push(message);
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.wake();
  }

  async receive(): Promise<Message> {
    for (;;) {
      const message = this.queue.shift();
      if (message) return message;
      if (this.closed) throw new Closed('the connection closed');
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  /** Something is waiting in this direction's receive(). */
  get blocked(): boolean {
    return this.waiter !== undefined && this.queue.length === 0 && !this.closed;
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}

/** The connection, which breaks the message the fault names. */
class Wire {
  readonly toDestination = new Link(this);
  readonly toSource = new Link(this);
  sent: Message[] = [];
  /** A delayed message: delivered once the source has given up waiting (see run()). */
  delayed: { link: Link; message: Message } | undefined;
  /** A reordered message: delivered after the next one in its direction. */
  private held: { link: Link; message: Message } | undefined;
  onCrash: () => void = () => undefined;

  constructor(private readonly fault: Fault | undefined) {}

  transmit(link: Link, message: Message): void {
    const index = this.sent.push(message) - 1;
    if (this.held?.link === link) {
      link.deliver(message);
      link.deliver(this.held.message);
      this.held = undefined;
      return;
    }
    if (this.fault?.index !== index) {
      link.deliver(message);
      return;
    }
    switch (this.fault.kind) {
      case 'drop':
        // A lost message on a stream is a broken connection.
        this.toDestination.close();
        this.toSource.close();
        return;
      case 'delay':
        this.delayed = { link, message };
        return;
      case 'duplicate':
        link.deliver(message);
        link.deliver(message);
        return;
      case 'reorder':
        this.held = { link, message };
        return;
      case 'stale-replay':
        link.deliver(message);
        // An old source (or a replayed capture) sends the same frame with the previous epoch.
        if ('epoch' in message) link.deliver({ ...message, epoch: message.epoch - 1 });
        return;
      case 'destination-crash':
        link.deliver(message);
        this.onCrash();
        return;
    }
  }
}

interface World {
  sourceRuns: boolean;
  destinationRuns: boolean;
  /** The destination's process died after its guest ran (a crash of the container, not a migration fault). */
  destinationDiedRunning: boolean;
  /** Epochs of Hello and State frames the destination accepted. */
  acceptedEpochs: number[];
}

/** receiver.ts's part: frames into the destination session; commit through the agent's fence. */
async function destination(wire: Wire, fence: EpochFence, world: World): Promise<DestinationSession> {
  const session = new DestinationSession(epoch);
  const link = wire.toDestination;
  const answer = wire.toSource;
  let crashed = false;
  wire.onCrash = () => {
    crashed = true;
    if (world.destinationRuns) world.destinationDiedRunning = true;
    world.destinationRuns = false;
    link.close();
    answer.close();
  };
  try {
    for (;;) {
      const message = await link.receive();
      if (crashed) throw new Closed('crashed');
      switch (message.type) {
        case 'hello':
          session.on({ type: 'hello', version: message.version, epoch: message.epoch, wholeMemory: false });
          world.acceptedEpochs.push(message.epoch);
          answer.send({ type: 'ready', version: dataChannelVersion });
          break;
        case 'round':
          session.on({ type: 'round', round: message.round });
          break;
        case 'pages':
          session.on({ type: 'pages' });
          break;
        case 'round-end':
          session.on({ type: 'round-end', final: message.final });
          if (!message.final) answer.send({ type: 'round-ack' });
          break;
        case 'log':
          session.on({ type: 'log' });
          break;
        case 'state':
          session.on({ type: 'state', epoch: message.epoch });
          world.acceptedEpochs.push(message.epoch);
          if (!fence.commit(epoch)) throw new Error(`epoch ${epoch} was aborted`);
          world.destinationRuns = true;
          answer.send({ type: 'running' });
          session.on({ type: 'resident' });
          return session;
        default:
          throw new Error(`unexpected ${message.type}`);
      }
    }
  } catch (error) {
    if (session.state !== 'failed') session.on({ type: 'failed', reason: (error as Error).message });
    answer.send({ type: 'error', message: (error as Error).message });
    answer.close();
    return session;
  }
}

class PeerRefused extends Error {}

/** sender.ts's part: the source session's events, and its decisions carried out. */
async function source(
  wire: Wire,
  world: World,
  fenceAnswer: () => Promise<'aborted' | 'ran'>,
  giveUp: Promise<void>,
): Promise<SourceSession> {
  const session = new SourceSession(epoch);
  const out = wire.toDestination;
  const expect = async (type: Message['type']) => {
    // The source's wait is bounded: a delayed answer counts as a lost connection.
    const message = await Promise.race([
      wire.toSource.receive(),
      giveUp.then(() => Promise.reject(new Closed('timeout'))),
    ]);
    if (message.type === 'error') throw new PeerRefused(message.message);
    if (message.type !== type) throw new Error(`expected ${type}, got ${message.type}`);
    return message;
  };
  try {
    out.send({ type: 'hello', version: dataChannelVersion, epoch });
    const ready = await expect('ready');
    const negotiated = session.on({ type: 'ready', peerVersion: ready.type === 'ready' ? ready.version : undefined });
    if (negotiated.do === 'roll-back') throw new Error(negotiated.reason);
    out.send({ type: 'round', round: 1 });
    out.send({ type: 'pages' });
    out.send({ type: 'round-end', final: false });
    await expect('round-ack');
    session.on({ type: 'round-acked' });
    world.sourceRuns = false;
    session.on({ type: 'stopped' });
    out.send({ type: 'round', round: 2 });
    out.send({ type: 'pages' });
    out.send({ type: 'round-end', final: true });
    out.send({ type: 'log' });
    out.send({ type: 'state', epoch });
    session.on({ type: 'state-sent', lazy: false });
    try {
      await expect('running');
      session.on({ type: 'running' });
    } catch (error) {
      const decision = session.on({
        type: 'failed',
        reason: (error as Error).message,
        refusedByPeer: error instanceof PeerRefused,
      });
      if (decision.do === 'fence') await settle(session, { fence: fenceAnswer });
      if (session.failed) throw error;
    }
  } catch (error) {
    if (!session.committed) out.send({ type: 'abort' });
    out.close();
    const decision = session.failed
      ? session.decision
      : session.on({ type: 'failed', reason: (error as Error).message, refusedByPeer: false });
    if (decision.do === 'roll-back' && decision.resume) world.sourceRuns = true;
  }
  return session;
}

const settleMicrotasks = async () => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};

/** One migration with `fault`; `agent`: whether the destination's agent answers the fence. */
async function run(fault: Fault | undefined, agent: 'reachable' | 'partitioned') {
  const wire = new Wire(fault);
  const fence = new EpochFence();
  const world: World = { sourceRuns: true, destinationRuns: false, destinationDiedRunning: false, acceptedEpochs: [] };
  let giveUp!: () => void;
  const gaveUp = new Promise<void>((resolve) => (giveUp = resolve));
  let reachable = agent === 'reachable';
  const fenceAnswer = async () => {
    if (!reachable) throw new Error('the destination agent is unreachable');
    return fence.abort(epoch);
  };
  const destinationDone = destination(wire, fence, world);
  const sourceDone = source(wire, world, fenceAnswer, gaveUp);
  await settleMicrotasks();
  // Quiet and the source still waits: the message it waits for is late or lost. It gives up (and
  // fences), then the late message, if any, arrives, then the destination sees the connection close.
  if (wire.toSource.blocked || wire.delayed) {
    giveUp();
    await settleMicrotasks();
  }
  if (wire.delayed) wire.delayed.link.deliver(wire.delayed.message);
  await settleMicrotasks();
  wire.toDestination.close();
  wire.toSource.close();
  const [sourceSession, destinationSession] = await Promise.all([sourceDone, destinationDone]);
  const before = { ...world, sourceState: sourceSession.state, reason: sourceSession.reason };
  // The network is back: `roam recover` asks again.
  reachable = true;
  if (sourceSession.state === 'unsettled') {
    const decision = await settle(sourceSession, { fence: fenceAnswer });
    if (decision.do === 'roll-back') world.sourceRuns = true;
  }
  return { before, after: { ...world, sourceState: sourceSession.state }, destinationSession, wire };
}

test('without faults the guest moves: it runs at the destination only', async () => {
  const { after } = await run(undefined, 'reachable');
  assert.equal(after.sourceState, 'running-there');
  assert.deepEqual([after.sourceRuns, after.destinationRuns], [false, true]);
});

test('a fault at every message, either way: exactly one side runs, or neither and the source says why; never an older epoch accepted', async () => {
  const clean = await run(undefined, 'reachable');
  const kinds: FaultKind[] = ['drop', 'delay', 'duplicate', 'reorder', 'stale-replay', 'destination-crash'];
  const outcomes = new Map<string, number>();
  for (const agent of ['reachable', 'partitioned'] as const) {
    for (let index = 0; index < clean.wire.sent.length; index++) {
      for (const kind of kinds) {
        const what = `${kind} at message ${index} (${clean.wire.sent[index]!.type}), agent ${agent}`;
        const { before, after } = await run({ index, kind }, agent);
        assert.ok(
          before.acceptedEpochs.every((e) => e === epoch),
          `${what}: accepted epochs ${before.acceptedEpochs}`,
        );
        for (const [when, w] of [
          ['before recovery', before],
          ['after recovery', after],
        ] as const) {
          assert.ok(!(w.sourceRuns && w.destinationRuns), `${what}, ${when}: two live copies`);
        }
        if (!before.sourceRuns && !before.destinationRuns && !before.destinationDiedRunning) {
          assert.equal(before.sourceState, 'unsettled', `${what}: neither runs, so the source is unsettled`);
          assert.match(before.reason ?? '', /cannot be asked/, `${what}: and says why`);
        }
        // Once the destination's agent answers, the container runs exactly once (unless its
        // destination copy crashed after it ran: then the source ended it as moved, as it should).
        if (!after.destinationDiedRunning)
          assert.ok(after.sourceRuns !== after.destinationRuns, `${what}: exactly one copy runs after recovery`);
        const key = `${before.sourceState}->${after.sourceState}`;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }
    }
  }
  // The faults reached every outcome: moved, rolled back, and unsettled then settled either way.
  for (const key of [
    'running-there->running-there',
    'rolled-back->rolled-back',
    'unsettled->rolled-back',
    'unsettled->running-there',
  ])
    assert.ok(outcomes.has(key), `outcome ${key} was reached: ${JSON.stringify(Object.fromEntries(outcomes))}`);
});

test('a State delayed past the fence never runs: the destination agent aborted its epoch first', async () => {
  const clean = await run(undefined, 'reachable');
  const stateIndex = clean.wire.sent.findIndex((m) => m.type === 'state');
  const { after, destinationSession } = await run({ index: stateIndex, kind: 'delay' }, 'reachable');
  assert.equal(after.sourceState, 'rolled-back');
  assert.deepEqual([after.sourceRuns, after.destinationRuns], [true, false]);
  assert.equal(destinationSession.state, 'failed');
});

test('each side refuses every event its table does not allow, with ROAM_SESSION_ORDER', () => {
  const sourceEvents = {
    ready: { type: 'ready', peerVersion: dataChannelVersion },
    'round-acked': { type: 'round-acked' },
    stopped: { type: 'stopped' },
    'state-sent': { type: 'state-sent', lazy: false },
    running: { type: 'running' },
    resident: { type: 'resident' },
    failed: { type: 'failed', reason: 'x', refusedByPeer: false },
    'fence-answer': { type: 'fence-answer', answer: 'aborted' },
  } as const;
  for (const state of Object.keys(sourceTransitions) as SourceState[]) {
    for (const [type, event] of Object.entries(sourceEvents)) {
      const session = new SourceSession(epoch);
      session.state = state;
      const allowed = sourceTransitions[state][type as keyof typeof sourceEvents];
      if (allowed) {
        session.on(event);
        assert.ok(allowed.includes(session.state), `${state} --${type}--> ${session.state}`);
      } else assert.throws(() => session.on(event), SessionOrderError, `${state} refuses ${type}`);
    }
  }
  const destinationEvents = {
    hello: { type: 'hello', version: dataChannelVersion, epoch, wholeMemory: false },
    round: { type: 'round', round: 1 },
    pages: { type: 'pages' },
    'round-end': { type: 'round-end', final: true },
    file: { type: 'file' },
    log: { type: 'log' },
    'post-copy': { type: 'post-copy' },
    state: { type: 'state', epoch },
    resident: { type: 'resident' },
    failed: { type: 'failed', reason: 'x' },
  } as const;
  for (const state of Object.keys(destinationTransitions) as DestinationState[]) {
    for (const [type, event] of Object.entries(destinationEvents)) {
      const session = new DestinationSession(epoch);
      session.state = state;
      const allowed = destinationTransitions[state][type as keyof typeof destinationEvents];
      // State in 'ready' is allowed only in post-copy proper (the whole memory comes lazily).
      if (state === 'ready' && type === 'state') continue;
      if (allowed) session.on(event);
      else assert.throws(() => session.on(event), SessionOrderError, `${state} refuses ${type}`);
    }
  }
});

test('the fence: whichever of commit and abort comes first wins, and an aborted epoch stays aborted', () => {
  const first = new EpochFence();
  assert.equal(first.commit(2), true);
  assert.equal(first.abort(2), 'ran');
  const second = new EpochFence();
  assert.equal(second.abort(2), 'aborted');
  assert.equal(second.commit(2), false);
  assert.equal(second.abort(2), 'aborted');
  assert.equal(second.commit(3), true, 'a later migration, a new epoch, may run');
  assert.equal(first.commit(3), true);
  assert.equal(first.abort(3), 'ran');
  const third = new EpochFence();
  third.commit(4);
  assert.equal(third.abort(3), 'ran', 'epoch 4 here means epoch 3 ran here and moved on');
});

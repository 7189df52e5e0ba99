import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, test } from 'node:test';
import type { ContainerState } from '../../src/container/container.js';
import { CompareTracker } from '../../src/migrate/dirty/compare-tracker.js';
import type { DirtyTracker } from '../../src/migrate/dirty/tracker.js';
import { MigrationError } from '../../src/migrate/errors.js';
import { type MigrationSink, migrateIn } from '../../src/migrate/receiver.js';
import { type MigrationMode, type MigrationSource, migrateOut, type SendOptions } from '../../src/migrate/sender.js';
import { EpochFence, StaleEpochError } from '../../src/migrate/session.js';
import { RoamError } from '../../src/platform/errors.js';
import {
  dataChannelLayout,
  dataChannelVersion,
  Frame,
  FrameReader,
  FrameWriter,
} from '../../src/protocol/data-channel.js';
import { FrameSplitter, ProtocolError } from '../../src/protocol/framing.js';
import { seededRandom } from '../helpers.js';

/**
 * The migration sender and receiver against each other in this process, over loopback TCP through
 * a relay that can cut the connection or damage a frame at any point, with a fake guest on each
 * side: a plain memory, stop/capture/resume that only count.
 */

const pageBytes = 65536;
const ticket = 't'.repeat(48);
/** The epoch each migration here raises the container to. */
const epoch = 2;
const expected = { ticket, epoch };
const scratch = mkdtempSync(join(tmpdir(), 'roam-unit-migration-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let runs = 0;

/** Four wasm pages, the second all zero (not sent at all in the first round). */
function guestMemory(): Uint8Array {
  const rnd = seededRandom(42);
  const memory = new Uint8Array(4 * pageBytes);
  for (let i = 0; i < memory.length; i += 97) if (i < pageBytes || i >= 2 * pageBytes) memory[i] = 1 + rnd(255);
  return memory;
}

/** CompareTracker, and a guest that keeps writing while it runs: after each scan of a running guest. */
function writingTracker(memory: Uint8Array): DirtyTracker {
  const inner = new CompareTracker();
  let writes = 0;
  return {
    method: inner.method,
    scan(view, options) {
      const ranges = inner.scan(view, options);
      if (!options?.stopped) {
        writes++;
        for (let i = 0; i < 50; i++) memory[(writes * 7919 + i * 4099) % memory.length] = writes;
      }
      return ranges;
    },
    close: () => inner.close(),
  };
}

type Direction = 'to destination' | 'to source';
interface Fault {
  direction: Direction;
  /** Index of the frame in that direction. */
  index: number;
  kind: 'cut' | 'corrupt' | 'retype';
}

interface Outcome {
  error: unknown;
  stops: number;
  resumes: number;
  ran: boolean;
  destinationError: unknown;
  /** Frame types the relay saw, per direction. */
  frames: Record<Direction, Frame[]>;
  /** The State frame went through the relay: the source committed. */
  committed: boolean;
  memoryMatches: boolean;
}

/** Forwards frames of one direction, and breaks the one the fault names. */
function relay(
  from: Socket,
  to: Socket,
  direction: Direction,
  seen: Frame[],
  fault: Fault | undefined,
  onState: () => void,
) {
  let broken = false;
  const splitter = new FrameSplitter({ layout: dataChannelLayout, channel: 'relay' }, (header, payload) => {
    if (broken) return;
    const index = seen.push(header[0] as Frame) - 1;
    let frame = Buffer.concat([header, payload]);
    if (fault?.direction === direction && fault.index === index) {
      if (fault.kind === 'cut') {
        broken = true;
        from.destroy();
        to.destroy();
        return;
      }
      frame = Buffer.from(frame);
      if (fault.kind === 'retype') frame[0] = 0xee;
      else frame[frame.length > header.length ? header.length : 0]! ^= 0xff;
    }
    if (frame[0] === Frame.State && direction === 'to destination') onState();
    to.write(frame);
  });
  from.on('data', (chunk: Buffer) => splitter.push(chunk));
  from.on('end', () => to.end());
  from.on('close', () => to.end());
  from.on('error', () => undefined);
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

async function migrate(mode: MigrationMode, fault?: Fault): Promise<Outcome> {
  const dir = join(scratch, String(runs++));
  const sourceDir = join(dir, 'source');
  const destinationDir = join(dir, 'destination');
  mkdirSync(join(sourceDir, 'sub'), { recursive: true });
  writeFileSync(join(sourceDir, 'sub', 'data.txt'), 'some file content');
  const memory = guestMemory();
  const sockets: Socket[] = [];
  const frames: Record<Direction, Frame[]> = { 'to destination': [], 'to source': [] };
  let committed = false;

  // The destination: one data-channel connection into migrateIn.
  let ran = false;
  let destinationMemory: WebAssembly.Memory | undefined;
  let runState: ContainerState | undefined;
  let settle!: () => void;
  const destinationSettled = new Promise<void>((resolve) => (settle = resolve));
  let destinationError: unknown;
  // The destination agent's record of the container's epochs.
  const fence = new EpochFence();
  const sink: MigrationSink = {
    directories: [destinationDir],
    commit: async (e) => {
      if (!fence.commit(e)) throw new StaleEpochError(`epoch ${e} was aborted`);
    },
    prepare: async (memoryBytes) => {
      destinationMemory = new WebAssembly.Memory({ initial: memoryBytes / pageBytes, maximum: 1024 });
      return destinationMemory;
    },
    writeLog: () => undefined,
    run: async (state) => {
      ran = true;
      runState = state;
      return performance.now();
    },
  };
  const destination = createServer({ noDelay: true }, (socket) => {
    sockets.push(socket);
    migrateIn(socket, expected, sink).then(settle, (error) => {
      destinationError = error;
      settle();
    });
  });
  const destinationPort = await listen(destination);

  // The relay the source connects to.
  const proxy = createServer({ noDelay: true }, (fromSource) => {
    const toDestination = connect({ host: '127.0.0.1', port: destinationPort, noDelay: true });
    sockets.push(fromSource, toDestination);
    const state = () => (committed = true);
    relay(fromSource, toDestination, 'to destination', frames['to destination'], fault, state);
    relay(toDestination, fromSource, 'to source', frames['to source'], fault, state);
  });
  const proxyPort = await listen(proxy);

  let stops = 0;
  let resumes = 0;
  const state = {
    preopens: [{ guestPath: '/data', hostPath: sourceDir }],
    engine: {},
    globals: [],
    host: {},
  } as unknown as ContainerState;
  const source: MigrationSource = {
    memory: () => memory,
    stop: async () => {
      stops++;
      return performance.now();
    },
    capture: async () => state,
    resume: () => {
      resumes++;
    },
    directories: [sourceDir],
    readLog: () => Buffer.from('the log so far\n'),
    tracker: () => writingTracker(memory),
  };
  let error: unknown;
  try {
    await migrateOut(
      source,
      {
        host: '127.0.0.1',
        port: proxyPort,
        ticket,
        epoch,
        // As the destination's agent answers, at once: whichever of this and the commit comes
        // first wins (the destination may still be restoring the guest).
        fence: async () => fence.abort(epoch),
      },
      { mode },
    );
  } catch (caught) {
    error = caught;
  }
  await destinationSettled;
  for (const socket of sockets) socket.destroy();
  destination.close();
  proxy.close();
  if (ran) {
    assert.deepEqual(runState!.preopens, [{ guestPath: '/data', hostPath: destinationDir }]);
    assert.equal(readFileSync(join(destinationDir, 'sub', 'data.txt'), 'utf8'), 'some file content');
  }
  const memoryMatches =
    destinationMemory !== undefined && Buffer.from(destinationMemory.buffer).equals(Buffer.from(memory));
  return { error, stops, resumes, ran, destinationError, frames, committed, memoryMatches };
}

for (const mode of ['stop-copy', 'pre-copy'] as const) {
  test(`${mode}: the destination ends up with the source's memory, files and state, and runs the guest`, async () => {
    const outcome = await migrate(mode);
    assert.equal(outcome.error, undefined);
    assert.equal(outcome.destinationError, undefined);
    assert.ok(outcome.ran);
    assert.ok(outcome.memoryMatches, 'destination memory equals the source memory');
    assert.deepEqual([outcome.stops, outcome.resumes], [1, 0]);
    const rounds = outcome.frames['to destination'].filter((f) => f === Frame.Round).length;
    // Pre-copy: a round while the guest writes, then (what it wrote meanwhile is a few ms of
    // transfer: converged) the final one with it.
    assert.equal(
      rounds,
      mode === 'stop-copy' ? 1 : 2,
      'pre-copy: one round while the guest writes, then the final one',
    );
  });

  test(`${mode}: a fault at any frame, either way, leaves exactly one copy running`, async () => {
    const clean = await migrate(mode);
    const faults: Fault[] = [];
    for (const direction of ['to destination', 'to source'] as const) {
      for (let index = 0; index < clean.frames[direction].length; index++) {
        for (const kind of ['cut', 'corrupt', 'retype'] as const) faults.push({ direction, index, kind });
      }
    }
    const tally = { succeeded: 0, failedBeforeCommit: 0, failedAfterCommit: 0 };
    for (const fault of faults) {
      const what = `${fault.kind} ${fault.direction} frame ${fault.index} (${Frame[clean.frames[fault.direction][fault.index]!]})`;
      const o = await migrate(mode, fault);
      if (o.error === undefined) tally.succeeded++;
      else if (o.committed) tally.failedAfterCommit++;
      else tally.failedBeforeCommit++;
      if (o.error === undefined) {
        // Succeeded regardless (a damaged log, or the destination's answer lost after the commit).
        assert.ok(o.ran && o.committed, `${what}: success means the guest runs at the destination`);
        assert.deepEqual([o.stops, o.resumes], [1, 0], `${what}: and not at the source`);
      } else {
        assert.ok(o.error instanceof MigrationError, `${what}: the source reports a MigrationError, not ${o.error}`);
        assert.equal(o.ran, false, `${what}: a failed migration never ran the guest at the destination`);
        assert.equal(o.resumes, o.stops, `${what}: the source resumes the guest it stopped, once`);
        assert.ok(o.stops <= 1);
      }
      if (o.ran) {
        assert.ok(o.committed, `${what}: the destination ran the guest only after the commit (State)`);
        assert.ok(o.memoryMatches, `${what}: and with the source's memory`);
      } else {
        assert.ok(o.destinationError instanceof RoamError, `${what}: the destination fails with a RoamError`);
      }
    }
    // Both sides of the commit were exercised: failures that resumed the source, before and after
    // State went out (the destination refused it), and successes after a lost or damaged answer.
    assert.ok(
      tally.succeeded > 0 && tally.failedBeforeCommit > 0 && tally.failedAfterCommit > 0,
      JSON.stringify(tally),
    );
  });
}

/**
 * A hand-driven source against migrateIn: `script` writes frames and may read answers. Resolves
 * with how the receiver ended and the Error frame it sent, if any.
 */
async function driveReceiver(script: (writer: FrameWriter, reader: FrameReader, client: Socket) => Promise<void>) {
  let ran = false;
  const sink: MigrationSink = {
    directories: [],
    commit: async () => undefined,
    prepare: async (memoryBytes) => new WebAssembly.Memory({ initial: memoryBytes / pageBytes, maximum: 16 }),
    writeLog: () => undefined,
    run: async () => {
      ran = true;
      return performance.now();
    },
  };
  let received!: Promise<unknown>;
  const server = createServer({ noDelay: true }, (socket) => {
    received = migrateIn(socket, expected, sink).then(
      () => undefined,
      (error: unknown) => error,
    );
  });
  const port = await listen(server);
  const client = connect({ host: '127.0.0.1', port, noDelay: true });
  await once(client, 'connect');
  server.close();
  const writer = new FrameWriter(client);
  const reader = new FrameReader(client);
  await script(writer, reader, client).catch(() => undefined);
  const error = await received;
  let answer: string | undefined;
  try {
    for (;;) {
      const frame = await reader.next();
      if (frame.type === Frame.Error) answer = JSON.parse(frame.payload.toString()).message;
    }
  } catch {}
  client.destroy();
  return { error, ran, answer };
}

const hello = (writer: FrameWriter, reader: FrameReader, memoryBytes = pageBytes) => {
  writer.send(Frame.Hello, { ticket, version: dataChannelVersion, epoch, memoryBytes });
  return reader.expect(Frame.Ready);
};

/** A round of `bytes` at offset 0, with its checksum. */
function round(writer: FrameWriter, n: number, final: boolean, bytes = Buffer.alloc(100, n)) {
  writer.send(Frame.Round, { round: n, memoryBytes: pageBytes });
  const offset = Buffer.alloc(4);
  writer.sendParts(Frame.Pages, [offset, bytes]);
  writer.send(Frame.RoundEnd, {
    sha256: createHash('sha256').update(offset).update(bytes).digest('hex'),
    bytes: bytes.length,
    final,
  });
}
const stateFrame = { state: { preopens: [], engine: {}, globals: [], host: {} }, epoch };

/** `answered`: the source is told why (else the connection is just dropped: a broken stream). */
const refused = (pattern: RegExp, code = 'ROAM_PROTOCOL', answered = true) => ({
  check: (outcome: { error: unknown; ran: boolean; answer: string | undefined }) => {
    const { error } = outcome;
    assert.ok(error instanceof RoamError, `a RoamError, not ${error}`);
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    assert.equal(outcome.ran, false, 'the guest never ran');
    assert.equal(outcome.answer, answered ? error.message : undefined, 'the source is told why in an Error frame');
  },
});

const orderCases: [string, (w: FrameWriter, r: FrameReader) => Promise<void>, ReturnType<typeof refused>][] = [
  [
    'State before any round',
    async (w, r) => {
      await hello(w, r);
      w.send(Frame.State, stateFrame);
    },
    refused(/State before the final round of memory checked out/, 'ROAM_SESSION_ORDER'),
  ],
  [
    'State after a pre-copy round only',
    async (w, r) => {
      await hello(w, r);
      round(w, 1, false);
      await r.expect(Frame.RoundAck);
      w.send(Frame.State, stateFrame);
    },
    refused(/State before the final round/, 'ROAM_SESSION_ORDER'),
  ],
  [
    'State inside the final round (its RoundEnd not sent)',
    async (w, r) => {
      await hello(w, r);
      w.send(Frame.Round, { round: 1, memoryBytes: pageBytes });
      w.sendParts(Frame.Pages, [Buffer.alloc(4), Buffer.alloc(10)]);
      w.send(Frame.State, stateFrame);
    },
    refused(/State inside round 1/, 'ROAM_SESSION_ORDER'),
  ],
  [
    'a second Hello',
    async (w, r) => {
      await hello(w, r);
      w.send(Frame.Hello, { ticket, memoryBytes: pageBytes });
    },
    refused(/unexpected Hello frame/),
  ],
  [
    'pages outside a round',
    async (w, r) => {
      await hello(w, r);
      w.sendParts(Frame.Pages, [Buffer.alloc(4), Buffer.alloc(10)]);
    },
    refused(/pages outside a round/, 'ROAM_SESSION_ORDER'),
  ],
  [
    'a round after the final one',
    async (w, r) => {
      await hello(w, r);
      round(w, 1, true);
      w.send(Frame.Round, { round: 2, memoryBytes: pageBytes });
    },
    refused(/round 2 began after the final round/, 'ROAM_SESSION_ORDER'),
  ],
  [
    'a round inside a round',
    async (w, r) => {
      await hello(w, r);
      w.send(Frame.Round, { round: 1, memoryBytes: pageBytes });
      w.send(Frame.Round, { round: 2, memoryBytes: pageBytes });
    },
    refused(/round 2 began inside round 1/, 'ROAM_SESSION_ORDER'),
  ],
  [
    'a damaged round',
    async (w, r) => {
      await hello(w, r);
      w.send(Frame.Round, { round: 1, memoryBytes: pageBytes });
      w.sendParts(Frame.Pages, [Buffer.alloc(4), Buffer.alloc(10)]);
      w.send(Frame.RoundEnd, { sha256: '0'.repeat(64), bytes: 10, final: true });
    },
    refused(/checksum mismatch in round 1/),
  ],
  [
    'PostCopy in a migration announced without post-copy',
    async (w, r) => {
      await hello(w, r);
      w.send(Frame.PostCopy, Buffer.alloc(4));
    },
    refused(/PostCopy frame in a migration announced without post-copy/),
  ],
  [
    'a Log inside a round',
    async (w, r) => {
      await hello(w, r);
      w.send(Frame.Round, { round: 1, memoryBytes: pageBytes });
      w.send(Frame.Log, Buffer.from('log'));
    },
    refused(/Log inside round 1/, 'ROAM_SESSION_ORDER'),
  ],
  [
    'a Hello of another major protocol version',
    async (w) => w.send(Frame.Hello, { ticket, version: '2.0', epoch, memoryBytes: pageBytes }),
    refused(/peer speaks data-channel protocol 2\.0 and this node 1\.0/, 'ROAM_PROTOCOL_VERSION'),
  ],
  [
    'a Hello without a protocol version (a peer from before versions)',
    async (w) => w.send(Frame.Hello, { ticket, memoryBytes: pageBytes }),
    refused(/protocol 0 \(unversioned\) and this node 1\.0/, 'ROAM_PROTOCOL_VERSION'),
  ],
  [
    'a Hello of an older epoch',
    async (w) => w.send(Frame.Hello, { ticket, version: dataChannelVersion, epoch: epoch - 1, memoryBytes: pageBytes }),
    refused(/Hello of older epoch 1 refused: this destination receives epoch 2/, 'ROAM_EPOCH_STALE'),
  ],
  [
    'a State of an older epoch',
    async (w, r) => {
      await hello(w, r);
      round(w, 1, true);
      w.send(Frame.State, { ...stateFrame, epoch: epoch - 1 });
    },
    refused(/State of older epoch 1 refused/, 'ROAM_EPOCH_STALE'),
  ],
  [
    'a wrong ticket',
    async (w) => w.send(Frame.Hello, { ticket: 'x'.repeat(48), memoryBytes: pageBytes }),
    refused(/wrong migration ticket/),
  ],
  [
    'a malformed Hello',
    async (w) => w.send(Frame.Hello, { ticket, memoryBytes: 'lots' }),
    refused(/malformed Hello frame: memoryBytes/, 'ROAM_PROTOCOL_MALFORMED'),
  ],
  [
    'an oversize frame before the Hello',
    async (w) => w.sendParts(Frame.Log, [Buffer.alloc(1 << 20)]),
    refused(/announces 1048576 bytes/, 'ROAM_PROTOCOL_TOO_LARGE', false),
  ],
];

for (const [name, script, expectation] of orderCases) {
  test(`the receiver refuses frames out of order: ${name}`, async () => {
    expectation.check(await driveReceiver(script));
  });
}

test('the receiver runs the guest after a final round that checked out (the hand-driven source is right)', async () => {
  const outcome = await driveReceiver(async (w, r) => {
    await hello(w, r);
    round(w, 1, false);
    await r.expect(Frame.RoundAck);
    round(w, 2, true);
    w.send(Frame.Log, Buffer.from('log'));
    w.send(Frame.State, stateFrame);
    await r.expect(Frame.Running);
  });
  assert.equal(outcome.error, undefined);
  assert.ok(outcome.ran);
});

test('a source that vanishes mid-frame leaves the receiver with a truncated-stream error, the guest never run', async () => {
  const outcome = await driveReceiver(async (w, r, client) => {
    await hello(w, r);
    w.sendParts(Frame.Log, [Buffer.alloc(10)]);
    await w.flush();
    // Part of the next frame, then the end.
    client.end(Buffer.from([Frame.Log, 100, 0, 0, 0, 1, 2]));
  });
  assert.ok(outcome.error instanceof ProtocolError);
  assert.equal(outcome.error.code, 'ROAM_PROTOCOL_TRUNCATED');
  assert.equal(outcome.ran, false);
});

/** migrateOut against a hand-driven destination that answers the Hello with `answer`. */
async function sourceAgainst(answer: (writer: FrameWriter) => void, options: Partial<SendOptions> = {}) {
  const received: Frame[] = [];
  let closed!: Promise<void>;
  const server = createServer({ noDelay: true }, (socket) => {
    const reader = new FrameReader(socket);
    const writer = new FrameWriter(socket);
    // Until the source closes the connection.
    closed = (async () => {
      for (;;) {
        const frame = await reader.next();
        received.push(frame.type);
        if (frame.type === Frame.Hello) answer(writer);
      }
    })().catch(() => void socket.destroy());
  });
  const port = await listen(server);
  let stops = 0;
  let resumes = 0;
  const memory = guestMemory();
  const source: MigrationSource = {
    memory: () => memory,
    stop: async () => {
      stops++;
      return performance.now();
    },
    capture: async () => ({}) as ContainerState,
    resume: () => void resumes++,
    directories: [],
    readLog: () => Buffer.alloc(0),
    tracker: () => new CompareTracker(),
  };
  const error = await migrateOut(
    source,
    { host: '127.0.0.1', port, ticket, epoch, fence: async () => 'aborted' },
    { mode: 'pre-copy', ...options },
  ).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  await closed;
  server.close();
  return { error, stops, resumes, received };
}

test('a destination of another major protocol version: the source refuses it, aborts, and keeps running', async () => {
  const outcome = await sourceAgainst((w) => w.send(Frame.Ready, { version: '2.0' }));
  assert.ok(outcome.error instanceof MigrationError);
  assert.match(outcome.error.message, /peer speaks data-channel protocol 2\.0 and this node 1\.0/);
  assert.deepEqual([outcome.stops, outcome.resumes], [0, 0], 'the guest was never stopped');
  assert.deepEqual(outcome.received, [Frame.Hello, Frame.Abort], 'no page went out; the destination is told why');
});

test('a destination that refuses the source version: the source reports its reason and keeps running', async () => {
  const outcome = await sourceAgainst((w) =>
    w.send(Frame.Error, { message: 'the peer speaks data-channel protocol 1.0 and this node 2.0: ...' }),
  );
  assert.ok(outcome.error instanceof MigrationError);
  assert.match(outcome.error.message, /protocol 1\.0 and this node 2\.0/);
  assert.deepEqual([outcome.stops, outcome.resumes], [0, 0]);
});

test('a destination that never answers the Hello: the source gives up within its bound and keeps running', async () => {
  const started = performance.now();
  const outcome = await sourceAgainst(() => undefined, { answerTimeouts: { ready: 300, answer: 300 } });
  assert.ok(performance.now() - started < 5000);
  assert.ok(outcome.error instanceof MigrationError);
  assert.match(outcome.error.message, /keeps running here: the destination did not answer \(Ready\) within 0\.3 s/);
  assert.deepEqual([outcome.stops, outcome.resumes], [0, 0], 'the guest was never stopped');
});

test('a destination that answers Ready, then goes silent mid-round: the source gives up within its bound and keeps running', async () => {
  const started = performance.now();
  const outcome = await sourceAgainst((w) => w.send(Frame.Ready, { version: dataChannelVersion }), {
    answerTimeouts: { ready: 300, answer: 300 },
  });
  assert.ok(performance.now() - started < 5000);
  assert.ok(outcome.error instanceof MigrationError);
  assert.match(outcome.error.message, /keeps running here: the destination (did not answer \(RoundAck\)|took nothing)/);
  assert.deepEqual([outcome.stops, outcome.resumes], [0, 0], 'the guest was never stopped');
});

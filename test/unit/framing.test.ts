import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { isRoamError } from '../../src/platform/errors.js';
import {
  dataChannelLayout,
  decodeFile,
  encodeFile,
  Frame,
  FramePayload,
  FrameReader,
  type PageSink,
} from '../../src/protocol/data-channel.js';
import {
  ChannelClosedError,
  decode,
  FrameSplitter,
  FrameTooLargeError,
  frameHeader,
  MalformedFrameError,
  ProtocolError,
  TruncatedStreamError,
} from '../../src/protocol/framing.js';
import { seededRandom } from '../helpers.js';

function bytes(rnd: (n: number) => number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = rnd(256);
  return out;
}

/** `stream` cut at random points (1-byte pieces included). */
function randomSplit(rnd: (n: number) => number, stream: Buffer): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < stream.length; ) {
    const size = rnd(4) === 0 ? 1 : 1 + rnd(Math.min(700, stream.length - at));
    pieces.push(stream.subarray(at, at + size));
    at += size;
  }
  return pieces;
}

interface Sent {
  type: number;
  payload: Buffer;
}

/** Random data-channel frames, PAGES ones with their 4-byte offset field first. */
function randomFrames(rnd: (n: number) => number, count: number): Sent[] {
  const types = [Frame.Hello, Frame.Round, Frame.Pages, Frame.Pages, Frame.Log, Frame.State];
  return Array.from({ length: count }, () => {
    const type = types[rnd(types.length)]!;
    return { type, payload: bytes(rnd, rnd(5) === 0 ? 0 : rnd(1500)) };
  });
}

const encode = (frames: Sent[]) =>
  Buffer.concat(frames.flatMap((f) => [frameHeader(dataChannelLayout, f.type, f.payload.length), f.payload]));

test('random chunk splits of a stream of frames reassemble exactly', () => {
  for (let seed = 1; seed <= 50; seed++) {
    const rnd = seededRandom(seed);
    const sent = randomFrames(rnd, 1 + rnd(30));
    const got: Sent[] = [];
    const splitter = new FrameSplitter({ layout: dataChannelLayout, channel: 'test' }, (header, payload, streamed) => {
      assert.equal(streamed, false);
      got.push({ type: header[0]!, payload: Buffer.from(payload) });
    });
    for (const piece of randomSplit(rnd, encode(sent))) splitter.push(piece);
    assert.equal(splitter.midFrame, false);
    splitter.end();
    assert.deepEqual(got, sent, `seed ${seed}`);
  }
});

test('a streaming sink gets exactly the bytes of its frame type, in order, and the others come whole', () => {
  for (let seed = 1; seed <= 50; seed++) {
    const rnd = seededRandom(seed);
    const sent = randomFrames(rnd, 1 + rnd(30));
    const streamedBytes: Buffer[] = [];
    const events: string[] = [];
    let expectedAt = 0;
    const got: Sent[] = [];
    const splitter = new FrameSplitter(
      {
        layout: dataChannelLayout,
        channel: 'test',
        stream: {
          type: Frame.Pages,
          prefixBytes: 4,
          sink: {
            begin: (header, prefix, length) => {
              events.push(`begin ${prefix.toString('hex')} ${length}`);
              assert.equal(header[0], Frame.Pages);
              assert.equal(header.readUInt32LE(1), length + 4);
              expectedAt = 0;
            },
            data: (piece, at) => {
              assert.equal(at, expectedAt, 'pieces arrive in order');
              expectedAt += piece.length;
              streamedBytes.push(Buffer.from(piece));
            },
          },
        },
      },
      (header, payload, streamed) => {
        if (streamed) events.push(`end ${payload.toString('hex')}`);
        got.push({ type: header[0]!, payload: Buffer.from(payload) });
      },
    );
    for (const piece of randomSplit(rnd, encode(sent))) splitter.push(piece);
    const isStreamed = (f: Sent) => f.type === Frame.Pages && f.payload.length >= 4;
    assert.deepEqual(
      Buffer.concat(streamedBytes),
      Buffer.concat(sent.filter(isStreamed).map((f) => f.payload.subarray(4))),
      'the sink got exactly the PAGES bytes after their offset fields',
    );
    assert.deepEqual(
      events,
      sent
        .filter(isStreamed)
        .flatMap((f) => [
          `begin ${f.payload.subarray(0, 4).toString('hex')} ${f.payload.length - 4}`,
          `end ${f.payload.subarray(0, 4).toString('hex')}`,
        ]),
    );
    // Every frame is reported in stream order; streamed ones with their prefix alone.
    assert.deepEqual(
      got,
      sent.map((f) => (isStreamed(f) ? { type: f.type, payload: f.payload.subarray(0, 4) } : f)),
      `seed ${seed}`,
    );
  }
});

test('a frame larger than allowed is refused as soon as its header is in, and the stream stays refused', () => {
  const splitter = new FrameSplitter({ layout: dataChannelLayout, channel: 'test', maxPayload: 100 }, () => undefined);
  splitter.push(Buffer.concat([frameHeader(dataChannelLayout, Frame.Log, 100), Buffer.alloc(100)]));
  const oversize = frameHeader(dataChannelLayout, Frame.Log, 101);
  const refused = (error: unknown) =>
    error instanceof FrameTooLargeError &&
    error instanceof ProtocolError &&
    error.code === 'ROAM_PROTOCOL_TOO_LARGE' &&
    /101 bytes/.test(error.message);
  assert.throws(() => splitter.push(oversize), refused);
  assert.throws(() => splitter.push(Buffer.alloc(1)), refused, 'no resynchronisation after a refusal');
  // The limit can be raised (once the peer is known).
  const raised = new FrameSplitter({ layout: dataChannelLayout, channel: 'test', maxPayload: 100 }, () => undefined);
  raised.maxPayload = 1000;
  raised.push(oversize);
});

test('a stream that ends inside a frame fails with a stable code', () => {
  const frame = Buffer.concat([frameHeader(dataChannelLayout, Frame.Log, 10), Buffer.alloc(10)]);
  for (let cut = 1; cut < frame.length; cut++) {
    const splitter = new FrameSplitter({ layout: dataChannelLayout, channel: 'data channel' }, () => undefined);
    splitter.push(frame);
    splitter.push(frame.subarray(0, cut));
    assert.equal(splitter.midFrame, true);
    assert.throws(
      () => splitter.end(),
      (error) =>
        error instanceof TruncatedStreamError &&
        error instanceof ChannelClosedError &&
        isRoamError(error) &&
        error.code === 'ROAM_PROTOCOL_TRUNCATED',
    );
  }
  const whole = new FrameSplitter({ layout: dataChannelLayout, channel: 'data channel' }, () => undefined);
  whole.push(frame);
  whole.end(); // on a frame boundary: a clean end
});

/** A stand-in for a socket: FrameReader only listens to it (and destroys it on a bad stream). */
function fakeSocket() {
  const emitter = new EventEmitter() as EventEmitter & { destroyed: boolean; destroy(): void };
  emitter.destroyed = false;
  emitter.destroy = () => {
    emitter.destroyed = true;
  };
  return emitter;
}

test('the data channel reader streams PAGES into memory and fails a truncated stream with a ProtocolError', async () => {
  const socket = fakeSocket();
  const memory = new Uint8Array(1 << 16);
  const begins: [number, number][] = [];
  const sink: PageSink = {
    begin: (offsetField, length) => begins.push([offsetField.readUInt32LE(0), length]),
    data: (offset, piece) => memory.set(piece, offset),
  };
  const reader = new FrameReader(socket as unknown as Socket, sink);
  const pages = Buffer.alloc(4 + 5000);
  pages.writeUInt32LE(1000, 0);
  pages.fill(7, 4);
  const round = Buffer.from(JSON.stringify({ round: 1, memoryBytes: 65536 }));
  const stream = Buffer.concat([
    frameHeader(dataChannelLayout, Frame.Round, round.length),
    round,
    frameHeader(dataChannelLayout, Frame.Pages, pages.length),
    pages,
    frameHeader(dataChannelLayout, Frame.Log, 3),
    Buffer.from('abc'),
    frameHeader(dataChannelLayout, Frame.Log, 3),
    Buffer.from('a'),
  ]);
  for (const piece of randomSplit(seededRandom(9), stream)) socket.emit('data', piece);
  socket.emit('end');
  assert.deepEqual(decode(FramePayload.Round, await reader.expect(Frame.Round)), { round: 1, memoryBytes: 65536 });
  const streamed = await reader.next();
  assert.equal(streamed.type, Frame.Pages);
  assert.equal(streamed.streamed, true);
  assert.deepEqual(begins, [[1000, 5000]]);
  assert.ok(memory.subarray(1000, 6000).every((b) => b === 7));
  assert.ok(memory.subarray(0, 1000).every((b) => b === 0) && memory.subarray(6000).every((b) => b === 0));
  assert.equal((await reader.expect(Frame.Log)).toString(), 'abc');
  await assert.rejects(
    reader.next(),
    (error) => error instanceof TruncatedStreamError && error.code === 'ROAM_PROTOCOL_TRUNCATED',
  );
});

test('an Error frame where another was expected is the peer giving up; any other frame a ProtocolError', async () => {
  const socket = fakeSocket();
  const reader = new FrameReader(socket as unknown as Socket);
  const error = Buffer.from(JSON.stringify({ message: 'disk full' }));
  socket.emit('data', Buffer.concat([frameHeader(dataChannelLayout, Frame.Error, error.length), error]));
  await assert.rejects(
    reader.expect(Frame.Ready),
    (e) => e instanceof ProtocolError && e.code === 'ROAM_PEER' && e.message === 'disk full',
  );
  socket.emit('data', frameHeader(dataChannelLayout, Frame.Log, 0));
  await assert.rejects(
    reader.expect(Frame.Ready),
    (e) =>
      e instanceof ProtocolError && e.code === 'ROAM_PROTOCOL' && /expected Ready, got a Log frame/.test(e.message),
  );
  socket.emit('close');
  await assert.rejects(reader.next(), (e) => e instanceof ChannelClosedError && e.code === 'ROAM_PROTOCOL_CLOSED');
});

test('JSON frames are checked against their schema, and the error names the frame and the field', () => {
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  const malformed = (pattern: RegExp) => (error: unknown) =>
    error instanceof MalformedFrameError && error.code === 'ROAM_PROTOCOL_MALFORMED' && pattern.test(error.message);
  assert.deepEqual(decode(FramePayload.Hello, json({ ticket: 't', memoryBytes: 65536, extra: 1 })), {
    ticket: 't',
    memoryBytes: 65536,
  });
  assert.throws(
    () => decode(FramePayload.Hello, Buffer.from('{"ticket":')),
    malformed(/^malformed Hello frame: not JSON/),
  );
  assert.throws(
    () => decode(FramePayload.Hello, json({ ticket: 5, memoryBytes: 65536 })),
    malformed(/Hello frame: ticket: /),
  );
  assert.throws(
    () => decode(FramePayload.Hello, json({ ticket: 't', memoryBytes: 1000 })),
    malformed(/memoryBytes: not a whole number of 64 KiB pages/),
  );
  assert.throws(() => decode(FramePayload.Round, json({ round: 0, memoryBytes: 0 })), malformed(/Round frame: round/));
  assert.throws(
    () => decode(FramePayload.RoundEnd, json({ sha256: 'xyz', bytes: 0 })),
    malformed(/RoundEnd frame: sha256/),
  );
  assert.throws(() => decode(FramePayload.State, json({ state: 'x' })), malformed(/State frame: state/));
  assert.throws(() => decode(FramePayload.State, json({ state: {} })), malformed(/State frame: state.preopens/));
  const state = decode(FramePayload.State, json({ state: { preopens: [], engine: { memo: 1 } }, epoch: 2 }));
  assert.deepEqual(state.state.engine, { memo: 1 }, 'the rest of the state passes through');
  assert.throws(
    () => decode(FramePayload.Running, json({ restoreMs: '1', sinceResumeMs: 0 })),
    malformed(/Running frame: restoreMs/),
  );
  assert.throws(() => decode(FramePayload.Resident, json({ stats: {} })), malformed(/Resident frame: stats.faults/));
  assert.throws(() => decode(FramePayload.Error, json(null)), malformed(/^malformed Error frame: /));
});

test('FILE frames: the header round-trips, a short or lying payload is refused', () => {
  const header = { dir: 0, path: 'a/b', kind: 'file' as const, mode: 0o644, size: 3, offset: 0 };
  const payload = encodeFile(header, Buffer.from('xyz'));
  const decoded = decodeFile(payload);
  assert.deepEqual(decoded.header, header);
  assert.equal(decoded.bytes.toString(), 'xyz');
  const refused = (error: unknown) => error instanceof MalformedFrameError && /File frame/.test(error.message);
  assert.throws(() => decodeFile(Buffer.alloc(2)), refused);
  const lying = Buffer.from(payload);
  lying.writeUInt32LE(1 << 20, 0);
  assert.throws(() => decodeFile(lying), refused);
  assert.throws(
    () => decodeFile(encodeFile({ ...header, kind: 'symlink' }, Buffer.alloc(0))),
    /a symlink without its target/,
  );
});

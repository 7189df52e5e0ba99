import assert from 'node:assert/strict';
import { test } from 'node:test';
import { admitAttach } from '../../src/gateway/gateway.js';
import { decode, FrameTooLargeError, MalformedFrameError, ProtocolError } from '../../src/protocol/framing.js';
import {
  dataFrame,
  dropAcknowledged,
  encodeTunnelFrame,
  maxFrameBytes,
  offsetPayload,
  readOffset,
  TunnelFrame,
  TunnelParser,
  TunnelPayload,
} from '../../src/protocol/tunnel.js';
import { seededRandom } from '../helpers.js';

interface Sent {
  type: TunnelFrame;
  conn: number;
  payload: Buffer;
}

test('random chunk splits of a tunnel stream reassemble exactly', () => {
  for (let seed = 1; seed <= 50; seed++) {
    const rnd = seededRandom(seed);
    const sent: Sent[] = Array.from({ length: 1 + rnd(25) }, () => {
      const payload = Buffer.allocUnsafe(rnd(4) === 0 ? 0 : rnd(2000));
      for (let i = 0; i < payload.length; i++) payload[i] = rnd(256);
      return { type: (1 + rnd(5)) as TunnelFrame, conn: rnd(0xffffffff), payload };
    });
    const stream = Buffer.concat(sent.map((f) => encodeTunnelFrame(f.type, f.conn, f.payload)));
    const got: Sent[] = [];
    const parser = new TunnelParser((type, conn, payload) => got.push({ type, conn, payload: Buffer.from(payload) }));
    for (let at = 0; at < stream.length; ) {
      const size = rnd(3) === 0 ? 1 : 1 + rnd(900);
      parser.push(stream.subarray(at, at + size));
      at += size;
    }
    assert.deepEqual(got, sent, `seed ${seed}`);
  }
});

test('the tunnel wire format is [u8 type][u32 LE conn][u32 LE length][payload]', () => {
  assert.deepEqual(
    encodeTunnelFrame(TunnelFrame.Data, 0x01020304, Buffer.from('hi')),
    Buffer.from([3, 4, 3, 2, 1, 2, 0, 0, 0, 0x68, 0x69]),
  );
  assert.deepEqual(offsetPayload(258, 1), Buffer.from([2, 1, 0, 0, 0, 0, 0, 0, 1]));
  assert.equal(readOffset(offsetPayload(2 ** 40)), 2 ** 40);
  assert.throws(
    () => readOffset(Buffer.alloc(7)),
    (e) => e instanceof MalformedFrameError,
  );
});

test('oversize tunnel frames are refused: small before the Attach, maxFrameBytes after', () => {
  const parser = new TunnelParser(() => undefined);
  parser.push(encodeTunnelFrame(TunnelFrame.Data, 1, Buffer.alloc(64 << 10)));
  const big = encodeTunnelFrame(TunnelFrame.Data, 1, Buffer.alloc((64 << 10) + 1));
  // Refused from its header alone: nothing of the payload needs to have arrived.
  assert.throws(
    () => parser.push(big.subarray(0, 9)),
    (e) => e instanceof FrameTooLargeError && e instanceof ProtocolError && e.code === 'ROAM_PROTOCOL_TOO_LARGE',
  );
  const attached = new TunnelParser(() => undefined);
  attached.maxFrameBytes = maxFrameBytes;
  assert.equal(attached.maxFrameBytes, maxFrameBytes);
  attached.push(big);
  const header = encodeTunnelFrame(TunnelFrame.Data, 1).subarray(0, 9);
  header.writeUInt32LE(maxFrameBytes + 1, 5);
  assert.throws(() => attached.push(header), FrameTooLargeError);
});

test('dropAcknowledged drops whole and partial buffers from the front, never more than queued', () => {
  const queue = () => [Buffer.from('abc'), Buffer.from('de'), Buffer.from('fghi')];
  const text = (q: Buffer[]) => Buffer.concat(q).toString();
  for (let count = 0; count <= 12; count++) {
    const q = queue();
    const dropped = dropAcknowledged(q, count);
    assert.equal(dropped, Math.min(count, 9));
    assert.equal(text(q), 'abcdefghi'.slice(dropped));
    assert.ok(
      q.every((b) => b.length > 0),
      'no empty buffers left behind',
    );
  }
  assert.equal(dropAcknowledged([], 5), 0);
});

test('Attach and Open payloads are checked against their schemas', () => {
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  const attach = { container: 'c', token: 't', conns: [{ conn: 1, received: 10, finReceived: false }] };
  assert.deepEqual(decode(TunnelPayload.Attach, json(attach)), attach);
  assert.throws(
    () => decode(TunnelPayload.Attach, json({ ...attach, conns: [{ conn: 1, received: -1, finReceived: false }] })),
    (e) => e instanceof MalformedFrameError && /Attach frame: conns\[0\]\.received/.test(e.message),
  );
  assert.throws(() => decode(TunnelPayload.Attach, json({ container: 'c', conns: [] })), /Attach frame: token/);
  assert.deepEqual(decode(TunnelPayload.Open, json({ port: 80 })), { port: 80 });
  assert.throws(() => decode(TunnelPayload.Open, json({ port: 70000 })), /Open frame: port/);
});

test("the gateway's attach decision: an older epoch than the highest attached is refused, the same or a newer one taken", () => {
  assert.deepEqual(admitAttach(undefined, 1), { admit: true }, 'the first attach of a container');
  assert.deepEqual(admitAttach(2, 2), { admit: true }, 'the same copy reconnecting');
  assert.deepEqual(admitAttach(2, 3), { admit: true }, 'the copy a migration made');
  const refused = admitAttach(2, 1);
  assert.equal(refused.admit, false);
  assert.match(refused.admit ? '' : refused.reason, /stale epoch 1: epoch 2 attached already/);
});

test('an Attach carries the epoch; one without it (a roam from before epochs) still decodes', () => {
  const attach = { container: 'aaaaaaaaaaaa', token: 't', conns: [] };
  assert.equal(decode(TunnelPayload.Attach, Buffer.from(JSON.stringify({ ...attach, epoch: 3 }))).epoch, 3);
  assert.equal(decode(TunnelPayload.Attach, Buffer.from(JSON.stringify(attach))).epoch, undefined);
  for (const epoch of [0, 1.5, '2'])
    assert.throws(() => decode(TunnelPayload.Attach, Buffer.from(JSON.stringify({ ...attach, epoch }))), ProtocolError);
});

test('a Data frame in two chunks is the same bytes as one encoded whole, and parses back', () => {
  const bytes = Buffer.from('GET key\r\n');
  const chunks = dataFrame(0xfffffffe, 2 ** 40 + 3, bytes);
  const whole = encodeTunnelFrame(TunnelFrame.Data, 0xfffffffe, offsetPayload(2 ** 40 + 3, bytes));
  assert.deepEqual(Buffer.concat(chunks), whole);
  assert.equal(chunks[1], bytes, 'the bytes are not copied');
  const got: [TunnelFrame, number, Buffer][] = [];
  const parser = new TunnelParser((type, conn, payload) => got.push([type, conn, Buffer.from(payload)]));
  for (const chunk of chunks) parser.push(Buffer.from(chunk));
  assert.equal(got.length, 1);
  assert.equal(readOffset(got[0]![2]), 2 ** 40 + 3);
  assert.deepEqual(got[0]![2].subarray(8), bytes);
});

import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import { type GranuleRanges, granuleBytes, PageServer } from '../../src/migrate/post-copy.js';
import { encodeRequest, messageBytes, residentMarker, zeroChunkFlag } from '../../src/protocol/page-channel.js';

/**
 * Post-copy's page server (the source's side of the page channels) over in-memory streams: what it
 * pushes, in which order, and that nothing goes twice or outside what the destination lacks.
 */

/** One end of a page channel: records what the server writes; `send` feeds it what the destination says. */
class Channel extends Duplex {
  private readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    done();
  }
  override _read(): void {}
  send(bytes: Buffer): void {
    this.push(bytes);
  }
  /** The granules of the chunks written so far, in order, and whether each chunk's bytes are right. */
  granules(memory: Uint8Array): number[] {
    const stream = Buffer.concat(this.chunks);
    const out: number[] = [];
    for (let at = 0; at < stream.length; ) {
      const offset = stream.readUInt32LE(at);
      const field = stream.readUInt32LE(at + 4);
      const zero = (field & zeroChunkFlag) !== 0;
      const length = field & ~zeroChunkFlag;
      at += messageBytes;
      if (!zero) {
        assert.ok(
          stream.subarray(at, at + length).equals(memory.subarray(offset, offset + length)),
          `bytes at ${offset}`,
        );
        at += length;
      }
      for (let g = offset / granuleBytes; g < (offset + length) / granuleBytes; g++) out.push(g);
    }
    return out;
  }
}

/** A memory of `granules` granules, each filled with its index + 1 (none all zero). */
function memoryOf(granules: number): Uint8Array {
  const memory = new Uint8Array(granules * granuleBytes);
  for (let g = 0; g < granules; g++) memory.fill(g + 1, g * granuleBytes, (g + 1) * granuleBytes);
  return memory;
}

const ranges = (...pairs: [number, number][]): GranuleRanges => Uint32Array.from(pairs.flat());
const span = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await turn();
}

function serve(memory: Uint8Array, missing: GranuleRanges, hot?: GranuleRanges) {
  const push = new Channel();
  const fault = new Channel();
  const server = new PageServer({ push, fault }, memory, missing, hot);
  return { push, fault, server };
}

test('post-copy pushes the hot set first, right away, then the rest in address order, each granule once', async () => {
  const memory = memoryOf(64);
  const { push, fault, server } = serve(memory, ranges([0, 64]), ranges([10, 12], [40, 44]));
  server.pushHot();
  await settle();
  assert.deepEqual(push.granules(memory), [10, 11, 40, 41, 42, 43], 'during the stop: the hot set only');
  // The guest runs at the destination and faults on granule 20: answered on the fault channel.
  fault.send(encodeRequest(20 * granuleBytes, granuleBytes));
  await settle();
  assert.deepEqual(fault.granules(memory), [20]);
  server.startPushing();
  await settle();
  const rest = span(0, 64).filter((g) => ![10, 11, 40, 41, 42, 43, 20].includes(g));
  assert.deepEqual(push.granules(memory), [10, 11, 40, 41, 42, 43, ...rest]);
  fault.send(encodeRequest(residentMarker, 0));
  const done = await server.done;
  assert.deepEqual(done, {
    pushedBytes: (64 - 1) * granuleBytes,
    requestedBytes: granuleBytes,
    hotBytes: 6 * granuleBytes,
  });
});

test('the hot set is cut to what the destination lacks (pre-post: only what was written since the round)', async () => {
  const memory = memoryOf(64);
  const { push, server } = serve(memory, ranges([0, 8], [30, 50]), ranges([5, 10], [45, 70]));
  server.startPushing();
  await settle();
  assert.deepEqual(push.granules(memory), [5, 6, 7, 45, 46, 47, 48, 49, ...span(0, 5), ...span(30, 45)]);
});

test('without a hot set the push is in address order, and pushHot sends nothing', async () => {
  const memory = memoryOf(40);
  const { push, server } = serve(memory, ranges([0, 40]));
  server.pushHot();
  await settle();
  assert.deepEqual(push.granules(memory), []);
  server.startPushing();
  await settle();
  assert.deepEqual(push.granules(memory), span(0, 40));
});

test('a hot granule the guest faulted on before the push is not pushed again', async () => {
  const memory = memoryOf(16);
  const { push, fault, server } = serve(memory, ranges([0, 16]), ranges([4, 8]));
  fault.send(encodeRequest(5 * granuleBytes, granuleBytes));
  await settle();
  server.pushHot();
  await settle();
  assert.deepEqual(fault.granules(memory), [5]);
  assert.deepEqual(push.granules(memory), [4, 6, 7]);
});

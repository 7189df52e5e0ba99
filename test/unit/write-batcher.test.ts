/**
 * The tunnel's write batching (src/platform/write-batcher.ts): the writes of one turn of the
 * event loop reach the stream as one writev, in order, with what lastInBatch adds at the end.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import { WriteBatcher } from '../../src/platform/write-batcher.js';

/** A stream that records each write call it gets as the list of its chunks. */
function recorder(): { stream: Writable; calls: string[][] } {
  const calls: string[][] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      calls.push([chunk.toString()]);
      done();
    },
    writev(chunks, done) {
      calls.push(chunks.map((c) => (c.chunk as Buffer).toString()));
      done();
    },
  });
  return { stream, calls };
}

test('the writes of one turn go out as one writev, in order, after lastInBatch', async () => {
  const { stream, calls } = recorder();
  let due = ['ack1', 'ack2'];
  const batcher = new WriteBatcher(stream, () => due.splice(0).map((a) => Buffer.from(a)));
  batcher.write(Buffer.from('a'));
  stream.write(Buffer.from('direct')); // straight to the stream while corked: keeps its place
  batcher.write(Buffer.from('b'));
  assert.deepEqual(calls, [], 'nothing is written within the turn');
  await turn();
  assert.deepEqual(calls, [['a', 'direct', 'b', 'ack1', 'ack2']]);
  due = ['ack3'];
  batcher.flushSoon(); // nothing written, but acknowledgements are due
  await turn();
  assert.deepEqual(calls[1], ['ack3']);
});

test('flush sends at once; a batch that grows large goes out without waiting for the turn', async () => {
  const { stream, calls } = recorder();
  const batcher = new WriteBatcher(stream);
  batcher.write(Buffer.from('x'));
  batcher.flush();
  assert.deepEqual(calls, [['x']]);
  const big = Buffer.alloc(300 * 1024, 'y');
  batcher.write(Buffer.from('z'));
  batcher.write(big);
  assert.equal(calls.length, 2, 'a batch over the limit is written at once');
  assert.equal(calls[1]!.length, 2);
  await turn();
  assert.equal(calls.length, 2, 'and nothing is left for the end of the turn');
});

test('a destroyed stream is left alone', async () => {
  const { stream, calls } = recorder();
  const batcher = new WriteBatcher(stream, () => [Buffer.from('late')]);
  batcher.write(Buffer.from('a'));
  stream.destroy();
  await turn();
  batcher.flush();
  assert.deepEqual(calls, []);
});

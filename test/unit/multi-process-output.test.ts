import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { PrefixedOutput } from '../../src/container/process-stdio.js';
import { SharedPair } from '../../src/container/shared-pair.js';
import { Wait } from '../../src/wasi/descriptors/descriptor.js';
import { StreamPipeDescriptor, streamPipeState } from '../../src/wasi/descriptors/stream-pipe.js';
import { LocalLoopback } from '../../src/wasi/loopback.js';

const unix = { family: 'unix', addr: '', port: 0 } as const;
const bytes = (text: string) => new Uint8Array(Buffer.from(text));

test('the owner prints whole lines only: a half-written line stays in the pair, for a capture', async () => {
  const pair = SharedPair.create(0, 'unix', [unix, unix], new Set([0]));
  const reader = new SharedPair(0, 'unix', [unix, unix], pair.buffer, new Set([1]));
  const out = new PassThrough();
  let printed = '';
  out.on('data', (chunk: Buffer) => (printed += chunk.toString()));
  const output = new PrefixedOutput(reader, 'sink | ', out);
  pair.put(0, [bytes('one\ntw')], 100);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(printed, 'sink | one\n');
  assert.equal(Buffer.from(pair.capture().data[0], 'base64').toString(), 'tw', 'the half line is in the pair');
  pair.put(0, [bytes('o\nthree')], 100);
  pair.release(0);
  await output.done;
  assert.equal(printed, 'sink | one\nsink | two\nsink | three\n', 'the last half line once the writer is gone');
});

test('a stream pipe end: a reader waits, a full pipe makes the writer wait, EOF once the writer closed', () => {
  const loopback = new LocalLoopback({
    pairs: [
      { id: 3, family: 'unix', addresses: [unix, unix], data: ['', ''], fin: [false, false], open: [true, true] },
    ],
  });
  const writer = StreamPipeDescriptor.restore(streamPipeState('write', 3), loopback, true);
  const reader = StreamPipeDescriptor.restore(streamPipeState('read', 3), loopback, true);
  assert.ok(reader.read([new Uint8Array(4)]) instanceof Wait, 'nothing yet: the reader waits');
  assert.equal(writer.write([bytes('hello')]), 5);
  const into = new Uint8Array(8);
  assert.equal(reader.read([into]), 5);
  assert.deepEqual(reader.capture(), { ...streamPipeState('read', 3) });
  assert.ok(writer.write([new Uint8Array(512 * 1024)]) !== 0);
  assert.ok(writer.write([new Uint8Array(16)]) instanceof Wait, 'full: the writer waits (suspends)');
  writer.close();
  assert.ok((reader.read([new Uint8Array(1 << 20)]) as number) > 0);
  assert.equal(reader.read([new Uint8Array(4)]), 0, 'EOF once the writer is gone and all is read');
  reader.close();
});

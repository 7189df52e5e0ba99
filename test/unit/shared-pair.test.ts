import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SharedPair } from '../../src/container/shared-pair.js';
import { STREAM_CAPACITY } from '../../src/wasi/loopback.js';

const here = { family: 'inet' as const, addr: '127.0.0.1', port: 1 };
const there = { ...here, port: 2 };

test('a shared pair carries bytes across the end of its rings, in order, and captures what is in flight', () => {
  const pair = SharedPair.create(7, 'inet', [here, there], new Set([0, 1]));
  const chunk = 100_000;
  let sent = 0;
  let received = 0;
  for (let round = 0; round < 12; round++) {
    const out = Buffer.alloc(chunk, 0).map((_, i) => (sent + i) & 0xff);
    assert.equal(pair.space(0) >= chunk, true);
    assert.equal(pair.put(0, [out], chunk), chunk);
    sent += chunk;
    const into = [Buffer.alloc(chunk / 2), Buffer.alloc(chunk / 2)];
    assert.equal(pair.take(1, into, false), chunk);
    for (const [i, byte] of Buffer.concat(into).entries()) assert.equal(byte, (received + i) & 0xff);
    received += chunk;
  }
  assert.ok(sent > 4 * STREAM_CAPACITY, 'the rings wrapped');
  pair.put(1, [Buffer.from('in flight')], 100);
  pair.finish(1);
  const restored = SharedPair.restore(pair.capture());
  assert.equal(restored.readable(0), 9);
  const into = Buffer.alloc(32);
  assert.equal(restored.take(0, [into], true), 9, 'peek leaves the bytes');
  assert.equal(restored.take(0, [into], false), 9);
  assert.equal(into.subarray(0, 9).toString(), 'in flight');
  assert.deepEqual(restored.fin, [false, true]);
});

test('a side held by another thread shows its end only once its bytes are read', async () => {
  const mine = SharedPair.create(1, 'inet', [here, there], new Set([0, 1]));
  const peer = new SharedPair(1, 'inet', [here, there], mine.buffer, new Set([1]));
  mine.handOver(1);
  const woken = mine.next();
  peer.put(1, [Buffer.from('last words')], 100);
  peer.release(1);
  await woken;
  assert.deepEqual(mine.fin, [false, false], 'unread bytes come first');
  assert.equal(mine.open[1], true);
  mine.take(0, [Buffer.alloc(64)], false);
  assert.deepEqual(mine.fin, [false, true]);
  assert.equal(mine.open[1], false);
  assert.equal(mine.space(0), STREAM_CAPACITY, 'writes to a closed peer are dropped, not waited on');
});

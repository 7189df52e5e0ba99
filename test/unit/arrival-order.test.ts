import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inArrivalOrder } from '../../src/wasi/poll.js';

// poll_oneoff's answer when input is ready on several connections: handled in subscription order,
// it must be handled in arrival order.
const event = (name: string, since?: number) => ({ name, since });
const names = (events: { name: string }[]) => events.map((e) => e.name);

test('ready connections whose subscription order matches their arrival are all reported', () => {
  assert.deepEqual(names(inArrivalOrder([event('fd5', 1), event('fd7', 2), event('fd9', 3)])), ['fd5', 'fd7', 'fd9']);
});

test('a connection whose input came later but sorts first waits for the next call', () => {
  // Redis's "BRPOPLPUSH with multiple blocked clients": rd1 (fd 12) sent first, rd2 (fd 11) second, r (fd 10) third.
  const first = inArrivalOrder([event('fd10', 3), event('fd11', 2), event('fd12', 1)]);
  assert.deepEqual(names(first), ['fd12']);
  assert.deepEqual(names(inArrivalOrder([event('fd10', 3), event('fd11', 2)])), ['fd11']);
  assert.deepEqual(names(inArrivalOrder([event('fd10', 3)])), ['fd10']);
});

test('after the first arrival out of order, every later arrival waits too', () => {
  assert.deepEqual(names(inArrivalOrder([event('fd3', 2), event('fd5', 1), event('fd7', 3)])), ['fd5']);
});

test('events without an order (files, pipes, writes, timers) are always reported', () => {
  const events = [event('timer'), event('fd4', 2), event('stdout'), event('fd6', 1)];
  assert.deepEqual(names(inArrivalOrder(events)), ['timer', 'stdout', 'fd6']);
});

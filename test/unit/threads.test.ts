import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SnapshotError } from '../../src/engine/errors.js';
import { FutexResult, mainThreadId, maxThreads, Scheduler } from '../../src/engine/threads.js';

const buffer = (address: number) => ({ address, bytes: 4096 });

/** A scheduler with the main thread and `others` spawned threads (ids 2, 3...). */
function scheduler(others: number): Scheduler {
  const s = new Scheduler(buffer(1024), 65536);
  for (let i = 0; i < others; i++) s.spawn(100 + i, buffer(8192 * (i + 1)), 200_000 + i * 10_000, new Uint8Array());
  return s;
}

test('threads take turns round robin, starting after the running one', () => {
  const s = scheduler(2);
  assert.equal(s.current.id, mainThreadId);
  assert.deepEqual([s.pickNext()?.id, s.pickNext()?.id, s.pickNext()?.id, s.pickNext()?.id], [2, 3, 1, 2]);
});

test('a futex wait blocks the thread until a wake, oldest waiter first, and says it was woken', () => {
  const s = scheduler(2);
  s.waitFutex(500, -1); // main waits
  assert.equal(s.pickNext()?.id, 2);
  s.waitFutex(500, -1); // 2 waits
  assert.equal(s.pickNext()?.id, 3);
  assert.equal(s.pickNext()?.id, 3, 'only 3 can run');
  assert.equal(s.wakeFutex(500, 1), 1);
  assert.equal(s.pickNext()?.id, 1, 'the oldest waiter runs');
  assert.deepEqual(s.takeResumeMemo(), { futex: FutexResult.woken });
  assert.equal(s.takeResumeMemo(), undefined, 'a memo is taken once');
  assert.equal(s.wakeFutex(501, 10), 0, 'another word wakes nobody');
  assert.equal(s.wakeFutex(500, 10), 1);
});

test('a timed futex wait times out; a thread waiting for the host runs once its wait settles', async () => {
  const s = scheduler(1);
  s.waitFutex(500, 1e6); // 1 ms
  let settle!: () => void;
  assert.equal(s.pickNext()?.id, 2);
  s.waitForHost(
    new Promise<void>((r) => {
      settle = r;
    }),
    'memo of the call',
  );
  assert.equal(s.pickNext(), undefined, 'both wait');
  const event = s.nextEvent();
  assert.ok(event);
  await event.ready;
  assert.equal(s.pickNext()?.id, 1);
  assert.deepEqual(s.takeResumeMemo(), { futex: FutexResult.timedOut });
  s.waitFutex(600, -1);
  settle();
  await s.nextEvent()?.ready;
  assert.equal(s.pickNext()?.id, 2);
  assert.equal(s.takeResumeMemo(), 'memo of the call');
});

test('a time slice ends only when another thread could run', async () => {
  const alone = scheduler(0);
  await new Promise((r) => setTimeout(r, 15));
  assert.equal(alone.sliceOver(), false);
  const two = scheduler(1);
  await new Promise((r) => setTimeout(r, 15));
  assert.equal(two.sliceOver(), true);
  assert.equal(two.pickNext()?.id, 2);
  assert.equal(two.sliceOver(), false, 'a new slice begins');
});

test('spawning stops at the thread limit; an ended thread leaves', () => {
  const s = scheduler(maxThreads - 1);
  assert.equal(s.spawn(1, buffer(1), 1, new Uint8Array()), undefined);
  s.exitCurrent();
  assert.ok(s.spawn(1, buffer(1), 1, new Uint8Array()));
});

test('a range made per thread starts with its current value in every thread', () => {
  const s = scheduler(1);
  assert.equal(s.addLocal({ address: 4242, bytes: 2 }, Uint8Array.of(7, 8)), true);
  assert.equal(s.addLocal({ address: 4242, bytes: 2 }, Uint8Array.of(9, 9)), false, 'once only');
  s.addLocal({ address: 5000, bytes: 1 }, Uint8Array.of(1));
  assert.deepEqual([...s.current.locals], [7, 8, 1]);
  assert.deepEqual([...s.pickNext()!.locals], [7, 8, 1]);
});

test('capture and restore keep every thread, its wait, its own values and the time left of a timed wait', () => {
  const s = scheduler(2);
  s.addLocal({ address: 4242, bytes: 4 }, Uint8Array.of(1, 2, 3, 4));
  s.waitFutex(700, 5e9); // main: 5 s
  s.pickNext(); // 2
  s.waitFutex(800, -1);
  s.pickNext(); // 3, running
  s.current.started = true;
  const captured = JSON.parse(JSON.stringify(s.capture()));
  const restored = new Scheduler(buffer(1024), 0);
  restored.restore(captured);
  assert.equal(restored.current.id, 3);
  assert.deepEqual(restored.locals, [{ address: 4242, bytes: 4 }]);
  assert.deepEqual([...restored.current.locals], [1, 2, 3, 4]);
  const again = restored.capture();
  assert.deepEqual(
    again.threads.map((t) => t.wait.kind),
    ['futex', 'futex', 'runnable'],
  );
  const left = again.threads[0]!.wait.kind === 'futex' ? again.threads[0]!.wait.remainingNs : undefined;
  assert.ok(left !== undefined && left > 4e9 && left <= 5e9, `time left: ${left}`);
  assert.equal(restored.wakeFutex(800, 1), 1);
  assert.equal(restored.spawn(1, buffer(1), 1, new Uint8Array())?.id, 4, 'ids go on from where they were');
});

test('a damaged threads record is refused with the field named', () => {
  const s = new Scheduler(buffer(1024), 0);
  assert.throws(
    () => s.restore({ threads: [{ id: 'one' }], current: 1, nextId: 2, locals: [] }),
    (e: unknown) => e instanceof SnapshotError && /threads\[0\]\.id/.test(e.message),
  );
  assert.throws(
    () => s.restore({ threads: [], current: 1, nextId: 2, locals: [] }),
    (e: unknown) => e instanceof SnapshotError && /no thread 1/.test(e.message),
  );
});

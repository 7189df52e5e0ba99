import assert from 'node:assert/strict';
import { closeSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Clockid, Errno, Eventtype, Subclockflags } from '../../src/wasi/constants.js';
import { fifo, Guest, RecordingBlocker, tempDir } from './helpers.js';

type Sub =
  | { userdata: bigint; clock: number; timeout: bigint; absolute?: boolean }
  | { userdata: bigint; fd: number; write?: boolean };

interface Event {
  userdata: bigint;
  errno: number;
  type: number;
  nbytes: bigint;
}

const MS = 1_000_000n;

function pollCall(g: Guest, subs: Sub[]): { result: number; events: Event[] } {
  const inPtr = g.alloc(48 * subs.length);
  const outPtr = g.alloc(32 * subs.length);
  const nevents = g.alloc(4);
  const view = g.view;
  subs.forEach((s, i) => {
    const at = inPtr + 48 * i;
    view.setBigUint64(at, s.userdata, true);
    if ('clock' in s) {
      view.setUint8(at + 8, Eventtype.CLOCK);
      view.setUint32(at + 16, s.clock, true);
      view.setBigUint64(at + 24, s.timeout, true);
      view.setUint16(at + 40, s.absolute ? Subclockflags.ABSTIME : 0, true);
    } else {
      view.setUint8(at + 8, s.write ? Eventtype.FD_WRITE : Eventtype.FD_READ);
      view.setUint32(at + 16, s.fd, true);
    }
  });
  const result = g.call('poll_oneoff', inPtr, outPtr, subs.length, nevents);
  const events: Event[] = [];
  if (result === Errno.SUCCESS) {
    for (let i = 0; i < g.u32(nevents); i++) {
      const at = outPtr + 32 * i;
      events.push({ userdata: g.u64(at), errno: g.u16(at + 8), type: g.u8(at + 10), nbytes: g.u64(at + 16) });
    }
  }
  return { result, events };
}

test('a relative monotonic timeout sleeps (synchronous mode)', () => {
  const g = Guest.create();
  const start = performance.now();
  const r = pollCall(g, [{ userdata: 7n, clock: Clockid.MONOTONIC, timeout: 30n * MS }]);
  const elapsed = performance.now() - start;
  assert.equal(r.result, Errno.SUCCESS);
  assert.deepEqual(r.events, [{ userdata: 7n, errno: 0, type: Eventtype.CLOCK, nbytes: 0n }]);
  assert.ok(elapsed >= 29, `slept ${elapsed} ms`);
  assert.ok(elapsed < 1000, `slept ${elapsed} ms`);
});

test('the earliest of two clocks fires alone; absolute deadlines in the past fire at once', () => {
  const g = Guest.create();
  const r = pollCall(g, [
    { userdata: 1n, clock: Clockid.MONOTONIC, timeout: 5000n * MS },
    { userdata: 2n, clock: Clockid.REALTIME, timeout: 10n * MS },
  ]);
  assert.deepEqual(
    r.events.map((e) => e.userdata),
    [2n],
  );
  const start = performance.now();
  const past = pollCall(g, [{ userdata: 3n, clock: Clockid.REALTIME, timeout: 1n, absolute: true }]);
  assert.deepEqual(
    past.events.map((e) => e.userdata),
    [3n],
  );
  assert.ok(performance.now() - start < 100);
});

test('CPU-time timeouts are measured in elapsed time', () => {
  const g = Guest.create();
  const start = performance.now();
  const r = pollCall(g, [{ userdata: 1n, clock: Clockid.PROCESS_CPUTIME_ID, timeout: 20n * MS }]);
  assert.equal(r.events.length, 1);
  assert.ok(performance.now() - start < 1000);
});

test('regular files are always ready, with the bytes left to read', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'f'), '0123456789');
  const g = Guest.create({ preopens: [{ guestPath: '/', hostPath: dir }] });
  const fd = g.openOk(3, 'f');
  g.read(fd, 4);
  const start = performance.now();
  const r = pollCall(g, [
    { userdata: 1n, clock: Clockid.MONOTONIC, timeout: 5000n * MS },
    { userdata: 2n, fd },
    { userdata: 3n, fd, write: true },
  ]);
  assert.ok(performance.now() - start < 1000);
  assert.deepEqual(r.events, [
    { userdata: 2n, errno: 0, type: Eventtype.FD_READ, nbytes: 6n },
    { userdata: 3n, errno: 0, type: Eventtype.FD_WRITE, nbytes: 0n },
  ]);
});

test('bad subscriptions become error events; no subscriptions is EINVAL', () => {
  const g = Guest.create();
  const r = pollCall(g, [
    { userdata: 1n, fd: 55 },
    { userdata: 2n, clock: 17, timeout: 1n },
  ]);
  assert.deepEqual(r.events, [
    { userdata: 1n, errno: Errno.BADF, type: Eventtype.FD_READ, nbytes: 0n },
    { userdata: 2n, errno: Errno.INVAL, type: Eventtype.CLOCK, nbytes: 0n },
  ]);
  assert.equal(pollCall(g, []).result, Errno.INVAL);
});

test('suspending mode: a timeout suspends, and the re-run keeps the original deadline', async () => {
  const blocker = new RecordingBlocker();
  const g = Guest.create({ blocker });
  const sub = [{ userdata: 9n, clock: Clockid.MONOTONIC, timeout: 40n * MS }];
  const start = performance.now();
  assert.equal(pollCall(g, sub).result, RecordingBlocker.SUSPENDED);
  const memo = blocker.last!.memo;
  assert.ok(Array.isArray(memo) && memo.length === 1);
  // An early re-run (e.g. after a stop and a resume) suspends again for the same deadline, not a new
  // 40 ms; the first attempt's wait is abandoned.
  blocker.last = { ready: Promise.resolve(), memo };
  await blocker.resume();
  assert.equal(pollCall(g, sub).result, RecordingBlocker.SUSPENDED);
  assert.deepEqual(blocker.last!.memo, memo);
  await blocker.resume();
  // Like the engine, re-run until done: libuv timers may fire a little before the deadline.
  let r = pollCall(g, sub);
  for (let i = 0; r.result === RecordingBlocker.SUSPENDED && i < 10; i++) {
    await blocker.resume();
    r = pollCall(g, sub);
  }
  const elapsed = performance.now() - start;
  assert.deepEqual(
    r.events.map((e) => e.userdata),
    [9n],
  );
  assert.ok(elapsed >= 39 && elapsed < 1000, `took ${elapsed} ms`);
});

test('suspending mode: stdin becomes ready when data arrives, before the timeout', async () => {
  const p = await fifo();
  const blocker = new RecordingBlocker();
  const g = Guest.create({ stdin: p.r, blocker });
  const subs = [
    { userdata: 1n, fd: 0 },
    { userdata: 2n, clock: Clockid.MONOTONIC, timeout: 10_000n * MS },
  ];
  assert.equal(pollCall(g, subs).result, RecordingBlocker.SUSPENDED);
  const start = performance.now();
  setTimeout(() => writeSync(p.w, 'abc'), 20);
  await blocker.resume();
  assert.ok(performance.now() - start < 5000);
  const r = pollCall(g, subs);
  assert.deepEqual(r.events, [{ userdata: 1n, errno: 0, type: Eventtype.FD_READ, nbytes: 3n }]);
  assert.deepEqual(g.read(0, 10), { errno: 0, data: 'abc' });
  closeSync(p.w);
});

test("an engine failure in suspend() is not turned into the guest's errno", () => {
  const blocker = {
    canSuspend: true,
    takeResumeMemo: () => undefined,
    suspend: (): number => {
      throw new Error('engine broke');
    },
  };
  const g = Guest.create({ blocker });
  assert.throws(() => pollCall(g, [{ userdata: 1n, clock: Clockid.MONOTONIC, timeout: 10_000n * MS }]), /engine broke/);
  // The abandoned wait's timer is dropped with the host (or by the next call).
  g.host.close();
});

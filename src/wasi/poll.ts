import type { Blocker } from '../engine/blocking.js';
import { type Clocks, sleepSync } from './clock.js';
import { Clockid, Errno, Eventtype, Size, Subclockflags } from './constants.js';
import { type Descriptor, Wait } from './descriptors/descriptor.js';
import { errnoOf, WasiError } from './errors.js';
import type { GuestMemory } from './memory.js';

export interface PollContext {
  memory: GuestMemory;
  clocks: Clocks;
  blocker: Blocker;
  /** The descriptor polled by an fd subscription (throws BADF, NOTCAPABLE, ...). */
  descriptor(fd: number): Descriptor;
}

type Subscription =
  | { kind: 'clock'; userdata: bigint; clock: number; deadline: bigint }
  | { kind: 'fd'; userdata: bigint; type: number; fd: number }
  | { kind: 'error'; userdata: bigint; type: number; errno: number };

interface PollEvent {
  userdata: bigint;
  errno: number;
  type: number;
  nbytes: bigint;
  /** Descriptor.readySince() of a read event. */
  since?: number;
}

/** setTimeout's largest delay; longer waits simply wake up and suspend again. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * poll_oneoff. Clock subscriptions become absolute deadlines once, on the first attempt; a
 * suspended call carries them as its resume memo (decimal strings, one per subscription,
 * '' for non-clock ones), so a re-run does not restart a relative timeout. Monotonic time
 * survives migration, so the memo stays meaningful on another host.
 */
export function pollOneoff(
  ctx: PollContext,
  inPtr: number,
  outPtr: number,
  count: number,
  neventsPtr: number,
): Wait | undefined {
  if (count === 0) throw new WasiError(Errno.INVAL);
  const memo = ctx.blocker.takeResumeMemo();
  const deadlines = Array.isArray(memo) && memo.length === count ? (memo as string[]) : undefined;
  const subs: Subscription[] = [];
  for (let i = 0; i < count; i++) subs.push(decode(ctx, inPtr + i * Size.SUBSCRIPTION, deadlines?.[i]));

  for (;;) {
    const events: PollEvent[] = [];
    const waits: Wait[] = [];
    let wakeIn: bigint | undefined;
    for (const sub of subs) {
      if (sub.kind === 'error') {
        events.push({ userdata: sub.userdata, errno: sub.errno, type: sub.type, nbytes: 0n });
      } else if (sub.kind === 'clock') {
        const left = sub.deadline - ctx.clocks.now(sub.clock);
        if (left <= 0n)
          events.push({ userdata: sub.userdata, errno: Errno.SUCCESS, type: Eventtype.CLOCK, nbytes: 0n });
        else if (wakeIn === undefined || left < wakeIn) wakeIn = left;
      } else {
        let ready: bigint | Wait;
        let since: number | undefined;
        try {
          const descriptor = ctx.descriptor(sub.fd);
          ready = descriptor.poll(sub.type === Eventtype.FD_READ ? 'read' : 'write');
          if (sub.type === Eventtype.FD_READ) since = descriptor.readySince();
        } catch (e) {
          events.push({ userdata: sub.userdata, errno: errnoOf(e, 'poll_oneoff'), type: sub.type, nbytes: 0n });
          continue;
        }
        if (ready instanceof Wait) waits.push(ready);
        else events.push({ userdata: sub.userdata, errno: Errno.SUCCESS, type: sub.type, nbytes: ready, since });
      }
    }
    if (events.length > 0) {
      for (const wait of waits) wait.cancel();
      const reported = inArrivalOrder(events);
      for (const [i, event] of reported.entries()) writeEvent(ctx.memory, outPtr + i * Size.EVENT, event);
      ctx.memory.setU32(neventsPtr, reported.length);
      return;
    }
    if (ctx.blocker.canSuspend) {
      return wakeup(
        wakeIn,
        waits,
        subs.map((s) => (s.kind === 'clock' ? s.deadline.toString() : '')),
      );
    }
    // Without suspension nothing but time can change (stdio reports itself ready), so sleep.
    sleepSync(Number(wakeIn ?? 0n) / 1e6);
  }
}

/**
 * The ready events to report so that a guest handling them in subscription order (select's fd
 * order, poll's array order) handles input in the order it arrived across connections: the read
 * events in arrival order as long as their subscription order agrees, and every event without an
 * order. What is left out is still ready at the next call, so this is the answer poll would have
 * given a moment earlier. (Redis's tests send commands on several connections without waiting in
 * between and rely on this, which Linux's epoll gives them.)
 */
export function inArrivalOrder<E extends { since?: number | undefined }>(events: E[]): E[] {
  const ordered = events
    .map((event, at) => ({ event, at }))
    .filter(({ event }) => event.since !== undefined)
    .sort((a, b) => a.event.since! - b.event.since!);
  const left = new Set<E>();
  let last = -1;
  for (const { event, at } of ordered) {
    if (left.size === 0 && at > last) last = at;
    else left.add(event);
  }
  return left.size === 0 ? events : events.filter((event) => !left.has(event));
}

function decode(ctx: PollContext, at: number, savedDeadline: string | undefined): Subscription {
  const mem = ctx.memory;
  const userdata = mem.getU64(at);
  const type = mem.getU8(at + 8);
  if (type === Eventtype.FD_READ || type === Eventtype.FD_WRITE) {
    return { kind: 'fd', userdata, type, fd: mem.getU32(at + 16) };
  }
  if (type !== Eventtype.CLOCK) return { kind: 'error', userdata, type, errno: Errno.INVAL };
  const id = mem.getU32(at + 16);
  const timeout = mem.getU64(at + 24);
  const absolute = (mem.getU16(at + 40) & Subclockflags.ABSTIME) !== 0;
  // CPU time barely advances while the guest waits, so its timeouts are measured on the
  // monotonic clock instead.
  const clock = id === Clockid.REALTIME ? Clockid.REALTIME : Clockid.MONOTONIC;
  if (savedDeadline) return { kind: 'clock', userdata, clock, deadline: BigInt(savedDeadline) };
  let now: bigint;
  try {
    now = ctx.clocks.now(id);
  } catch (e) {
    return { kind: 'error', userdata, type, errno: errnoOf(e, 'poll_oneoff') };
  }
  const left = absolute ? timeout - now : timeout;
  const deadline = clock === id ? now + left : ctx.clocks.now(clock) + left;
  return { kind: 'clock', userdata, clock, deadline };
}

function writeEvent(mem: GuestMemory, at: number, event: PollEvent): void {
  mem.bytes(at, Size.EVENT).fill(0);
  mem.setU64(at, event.userdata);
  mem.setU16(at + 8, event.errno);
  mem.setU8(at + 10, event.type);
  mem.setU64(at + 16, event.nbytes);
}

/**
 * A Wait that settles when the earliest deadline passes or any waited-on descriptor may be
 * ready. Settling, or cancelling it, stops the timer and the descriptors' waits (the re-run
 * call starts them again if still needed).
 */
function wakeup(wakeInNs: bigint | undefined, waits: Wait[], memo: string[]): Wait {
  let timer: NodeJS.Timeout | undefined;
  const cancel = () => {
    clearTimeout(timer);
    for (const wait of waits) wait.cancel();
  };
  const ready = new Promise<void>((resolve) => {
    const done = () => {
      cancel();
      resolve();
    };
    if (wakeInNs !== undefined) timer = setTimeout(done, Math.min(Math.ceil(Number(wakeInNs) / 1e6), MAX_TIMER_MS));
    // Many sockets of one network share a promise: one reaction each is enough.
    for (const ready of new Set(waits.map((wait) => wait.ready))) ready.then(done, done);
  });
  return new Wait(ready, { cancel, memo });
}

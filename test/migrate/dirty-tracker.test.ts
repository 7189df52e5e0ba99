import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type TestContext, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { CompareTracker, compareChunkBytes } from '../../src/migrate/dirty/compare-tracker.js';
import { UffdWpTracker } from '../../src/migrate/dirty/native-tracker.js';
import { createDirtyTracker } from '../../src/migrate/dirty/select.js';
import type { DirtyRange, DirtyTracker } from '../../src/migrate/dirty/tracker.js';
import { nativeAddon, nativeDirtyTracking } from '../../src/native/addon.js';
import { skipIfMissing } from '../helpers.js';

const wasmPage = 65536;
const native = nativeDirtyTracking();

/** A tracker implementation under test, with the granularity at which it reports writes. */
interface Kind {
  name: string;
  unit: number;
  skip: string | false;
  create(memory: Uint8Array): DirtyTracker;
}

const kinds: Kind[] = [
  {
    name: 'userfaultfd-wp',
    unit: nativeAddon()?.pageSize ?? 4096,
    skip: skipIfMissing(native.ok ? false : `exact dirty tracking unavailable here: ${native.reason}`),
    create(memory) {
      const tracker = UffdWpTracker.create(memory);
      assert.ok(tracker, 'UffdWpTracker.create');
      return tracker;
    },
  },
  { name: 'compare', unit: compareChunkBytes, skip: false, create: () => new CompareTracker() },
];

/** Deterministic PRNG (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function view(memory: WebAssembly.Memory): Uint8Array {
  return new Uint8Array(memory.buffer);
}

/** Writes `length` bytes at `offset`, each different from what it replaces; returns the units touched. */
function scribble(
  memory: Uint8Array,
  offset: number,
  length: number,
  next: () => number,
  unit: number,
  touched: Set<number>,
): void {
  for (let i = offset; i < offset + length; i++) memory[i] = (memory[i]! + 1 + (next() % 255)) & 255;
  for (let u = Math.floor(offset / unit); u * unit < offset + length; u++) touched.add(u);
}

/** The units of memory holding a non-zero byte. */
function nonZeroUnits(memory: Uint8Array, unit: number, from = 0): Set<number> {
  const live = Buffer.from(memory.buffer, memory.byteOffset, memory.length);
  const zero = Buffer.alloc(unit);
  const units = new Set<number>();
  for (let offset = from; offset < memory.length; offset += unit) {
    const end = Math.min(offset + unit, memory.length);
    if (live.compare(zero, 0, end - offset, offset, end) !== 0) units.add(offset / unit);
  }
  return units;
}

/** Checks the shape of a scan's ranges and returns the units they cover. */
function unitsOf(ranges: DirtyRange[], unit: number, memoryLength: number): Set<number> {
  const units = new Set<number>();
  let previousEnd = -1;
  for (const { offset, bytes } of ranges) {
    const end = offset + bytes.length;
    assert.ok(bytes.length > 0, 'empty range');
    assert.ok(
      offset > previousEnd,
      `ranges in increasing order, not overlapping, adjacent ones merged (${offset} after ${previousEnd})`,
    );
    assert.equal(offset % unit, 0, `range start ${offset} on a ${unit}-byte boundary`);
    assert.ok(end % unit === 0 || end === memoryLength, `range end ${end} on a boundary`);
    assert.ok(end <= memoryLength, 'range within memory');
    for (let u = offset / unit; u * unit < end; u++) units.add(u);
    previousEnd = end;
  }
  return units;
}

function sorted(units: Set<number>): number[] {
  return [...units].sort((a, b) => a - b);
}

/** Applies a scan to a replica (grown with zeros to the memory's length). */
function apply(replica: Buffer, ranges: DirtyRange[], length: number): Buffer {
  if (replica.length < length) {
    const grown = Buffer.alloc(length);
    replica.copy(grown);
    replica = grown;
  }
  for (const { offset, bytes } of ranges) replica.set(bytes, offset);
  return replica;
}

function assertReplica(replica: Buffer, memory: Uint8Array, what: string): void {
  assert.equal(replica.length, memory.length, `${what}: replica length`);
  const live = Buffer.from(memory.buffer, memory.byteOffset, memory.length);
  if (replica.equals(live)) return;
  let first = 0;
  while (replica[first] === live[first]) first++;
  assert.fail(`${what}: replica differs from memory, first at byte ${first} (page ${Math.floor(first / 4096)})`);
}

for (const kind of kinds) {
  for (const shared of [true, false]) {
    const memoryKind = shared ? 'shared' : 'non-shared';

    test(`${kind.name}: first scan returns the non-zero pages, later scans exactly what was written (${memoryKind} 64 MiB)`, {
      skip: kind.skip,
    }, () => {
      const memory = new WebAssembly.Memory({ initial: 1024, maximum: 1100, shared } as WebAssembly.MemoryDescriptor);
      const mem = view(memory);
      const next = random(shared ? 1 : 2);
      const scratch = new Set<number>();
      for (let i = 0; i < 300; i++)
        scribble(mem, next() % (mem.length - 8192), 1 + (next() % 6000), next, kind.unit, scratch);
      mem[mem.length - 1] = 7;

      const tracker = kind.create(mem);
      try {
        let ranges = tracker.scan(mem);
        assert.deepEqual(
          sorted(unitsOf(ranges, kind.unit, mem.length)),
          sorted(nonZeroUnits(mem, kind.unit)),
          'first scan: the non-zero units',
        );
        let replica = apply(Buffer.alloc(0), ranges, mem.length);
        assertReplica(replica, mem, 'after the first scan');
        assert.deepEqual(tracker.scan(mem), [], 'nothing written, nothing reported');

        for (let round = 0; round < 6; round++) {
          const touched = new Set<number>();
          const writes = [1, 3, 40, 200, 1000, 5][round]!;
          for (let i = 0; i < writes; i++) {
            const length = i % 4 === 0 ? 1 : 1 + (next() % 9000); // single bytes and runs across page boundaries
            scribble(mem, next() % (mem.length - length), length, next, kind.unit, touched);
          }
          if (round === 2) {
            // A page non-zero at the last scan, written back to all zeros, must be reported too.
            const page = [...nonZeroUnits(replica, 4096)].find((p) => p > 10)!;
            mem.fill(0, page * 4096, page * 4096 + 4096);
            touched.add(Math.floor((page * 4096) / kind.unit));
          }
          if (round === 3) scribble(mem, mem.length - 1, 1, next, kind.unit, touched); // the last byte
          ranges = tracker.scan(mem);
          assert.deepEqual(
            sorted(unitsOf(ranges, kind.unit, mem.length)),
            sorted(touched),
            `round ${round}: exactly the units written`,
          );
          replica = apply(replica, ranges, mem.length);
          assertReplica(replica, mem, `round ${round}`);
        }

        // Every other host page: more separate ranges than one PAGEMAP_SCAN call returns (4096).
        const scattered = new Set<number>();
        for (let page = 1; page * 4096 < mem.length; page += 2)
          scribble(mem, page * 4096 + (page % 4096), 1, next, kind.unit, scattered);
        ranges = tracker.scan(mem);
        assert.deepEqual(
          sorted(unitsOf(ranges, kind.unit, mem.length)),
          sorted(scattered),
          'scattered pages: exactly the units written',
        );
        replica = apply(replica, ranges, mem.length);
        assertReplica(replica, mem, 'scattered pages');

        // The returned bytes are the scan's own: writing memory afterwards does not change them.
        const first = ranges[0]!;
        const before = Buffer.from(first.bytes);
        mem.fill(0xee, first.offset, first.offset + first.bytes.length);
        assert.ok(Buffer.from(first.bytes).equals(before), 'returned bytes unchanged by later writes');
      } finally {
        tracker.close();
      }
    });

    test(`${kind.name}: memory.grow between scans (${memoryKind})`, { skip: kind.skip }, () => {
      const memory = new WebAssembly.Memory({ initial: 16, maximum: 256, shared } as WebAssembly.MemoryDescriptor);
      let mem = view(memory);
      const next = random(shared ? 3 : 4);
      const scratch = new Set<number>();
      for (let i = 0; i < 20; i++)
        scribble(mem, next() % (mem.length - 100), 1 + (next() % 100), next, kind.unit, scratch);

      const tracker = kind.create(mem);
      try {
        let replica = apply(Buffer.alloc(0), tracker.scan(mem), mem.length);
        assertReplica(replica, mem, 'before growing');

        // Grown, nothing written: nothing to send (the new part is zero).
        memory.grow(8);
        mem = view(memory);
        assert.deepEqual(tracker.scan(mem), [], 'grown, nothing written');
        replica = apply(replica, [], mem.length);

        // Grown twice, written in the old part and in the new parts.
        const oldLength = mem.length;
        memory.grow(4);
        memory.grow(12);
        mem = view(memory);
        const touched = new Set<number>();
        scribble(mem, 5, 3, next, kind.unit, touched);
        scribble(mem, oldLength - 2, 4, next, kind.unit, touched); // across the old end
        scribble(mem, oldLength + 3 * wasmPage + 100, 5000, next, kind.unit, touched);
        scribble(mem, mem.length - 10, 10, next, kind.unit, touched);
        let ranges = tracker.scan(mem);
        assert.deepEqual(
          sorted(unitsOf(ranges, kind.unit, mem.length)),
          sorted(touched),
          'grown: what was written, old and new parts',
        );
        replica = apply(replica, ranges, mem.length);
        assertReplica(replica, mem, 'after growing');

        // Then tracked as usual, the grown part included.
        const later = new Set<number>();
        scribble(mem, oldLength + 10 * wasmPage + 4095, 2, next, kind.unit, later);
        memory.grow(1);
        mem = view(memory);
        ranges = tracker.scan(mem);
        assert.deepEqual(
          sorted(unitsOf(ranges, kind.unit, mem.length)),
          sorted(later),
          'after growing: writes to the grown part',
        );
        replica = apply(replica, ranges, mem.length);
        assertReplica(replica, mem, 'after growing again');

        // Grown by moving to another address (V8 does not, but a tracker must cope): a replacement
        // memory at least as large; the scan must still bring the replica up to date.
        const moved = new WebAssembly.Memory({
          initial: mem.length / wasmPage + 2,
          maximum: 512,
          shared,
        } as WebAssembly.MemoryDescriptor);
        const movedView = view(moved);
        movedView.set(mem);
        scribble(movedView, 1000, 10, next, kind.unit, new Set());
        scribble(movedView, movedView.length - 5, 5, next, kind.unit, new Set());
        ranges = tracker.scan(movedView);
        unitsOf(ranges, kind.unit, movedView.length);
        replica = apply(replica, ranges, movedView.length);
        assertReplica(replica, movedView, 'after moving');
        const after = new Set<number>();
        scribble(movedView, 77 * 4096, 1, next, kind.unit, after);
        ranges = tracker.scan(movedView);
        assert.deepEqual(
          sorted(unitsOf(ranges, kind.unit, movedView.length)),
          sorted(after),
          'tracked at the new address',
        );
        replica = apply(replica, ranges, movedView.length);
        assertReplica(replica, movedView, 'after moving, one write');
      } finally {
        tracker.close();
      }
    });
  }

  test(`${kind.name}: a concurrent writer (worker thread) and repeated scans converge to an exact replica`, {
    skip: kind.skip,
  }, async (t: TestContext) => {
    const memory = new WebAssembly.Memory({
      initial: 1024,
      maximum: 1024,
      shared: true,
    } as WebAssembly.MemoryDescriptor);
    const mem = view(memory);
    const next = random(5);
    for (let i = 0; i < 100; i++) scribble(mem, next() % (mem.length - 5000), 5000, next, kind.unit, new Set());
    const control = new Int32Array(new SharedArrayBuffer(8));
    const tracker = kind.create(mem);
    const worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const mem = new Uint8Array(workerData.memory.buffer);
       const control = new Int32Array(workerData.control);
       let x = 0x9e3779b9 | 0, writes = 0;
       const rnd = () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return x >>> 0; };
       parentPort.postMessage('started');
       while (Atomics.load(control, 0) === 0) {
         // Mostly a hot set of pages, sometimes anywhere; runs of bytes crossing page boundaries.
         const hot = rnd() % 4 !== 0;
         const base = hot ? (rnd() % 64) * 65536 * 8 : rnd() % (mem.length - 20000);
         const length = 1 + (rnd() % 12000);
         const value = rnd() & 255;
         for (let i = base; i < base + length && i < mem.length; i += 1 + (rnd() % 512)) mem[i] = value;
         writes++;
       }
       parentPort.postMessage(writes);`,
      { eval: true, workerData: { memory, control: control.buffer } },
    );
    try {
      const [started] = (await once(worker, 'message')) as [string];
      assert.equal(started, 'started');
      let replica: Buffer = Buffer.alloc(0);
      let reported = 0;
      for (let scan = 0; scan < 40; scan++) {
        const ranges = tracker.scan(mem);
        unitsOf(ranges, kind.unit, mem.length);
        replica = apply(replica, ranges, mem.length);
        for (const range of ranges) reported += range.bytes.length;
        await new Promise((resolve) => setTimeout(resolve, 2)); // let the writer run alone a little too
      }
      Atomics.store(control, 0, 1);
      const [writes] = (await once(worker, 'message')) as [number];
      const ranges = tracker.scan(mem);
      replica = apply(replica, ranges, mem.length);
      assertReplica(replica, mem, 'after the writer stopped and a final scan');
      assert.deepEqual(tracker.scan(mem), [], 'writer stopped: nothing more');
      t.diagnostic(
        `${kind.name}: ${writes} concurrent writes, ${(reported / 1048576).toFixed(1)} MiB sent over 40 scans`,
      );
    } finally {
      Atomics.store(control, 0, 1);
      await worker.terminate();
      tracker.close();
    }
  });
}

test('createDirtyTracker picks the exact tracker when available, compare otherwise or on request', () => {
  const memory = new WebAssembly.Memory({ initial: 4, maximum: 8, shared: true } as WebAssembly.MemoryDescriptor);
  const mem = view(memory);
  const chosen = createDirtyTracker(mem);
  const forced = createDirtyTracker(mem, 'compare');
  try {
    assert.equal(chosen.method, native.ok ? 'userfaultfd-wp' : 'compare', native.reason);
    assert.equal(forced.method, 'compare');
    if (!native.ok) assert.ok(native.reason.length > 0, 'a reason when unavailable');
  } finally {
    chosen.close();
    forced.close();
  }
});

test('benchmark: one scan with few dirty pages at 256 MiB (printed, not asserted)', async (t: TestContext) => {
  const memory = new WebAssembly.Memory({ initial: 4096, maximum: 4096, shared: true } as WebAssembly.MemoryDescriptor);
  const mem = view(memory);
  mem.fill(1); // a memory in use: every page non-zero
  for (const kind of kinds) {
    if (kind.skip) {
      t.diagnostic(`${kind.name}: skipped (${kind.skip})`);
      continue;
    }
    const tracker = kind.create(mem);
    try {
      let started = process.hrtime.bigint();
      tracker.scan(mem);
      const firstMs = Number(process.hrtime.bigint() - started) / 1e6;
      const times: number[] = [];
      const next = random(6);
      for (let round = 0; round < 7; round++) {
        for (let i = 0; i < 10; i++) mem[next() % mem.length]! += 1;
        started = process.hrtime.bigint();
        const ranges = tracker.scan(mem);
        times.push(Number(process.hrtime.bigint() - started) / 1e6);
        assert.ok(ranges.length > 0 && ranges.length <= 10);
      }
      times.sort((a, b) => a - b);
      t.diagnostic(
        `${kind.name}: 256 MiB, 10 pages dirty: scan ${times[3]!.toFixed(2)} ms median (min ${times[0]!.toFixed(2)}, max ${times[6]!.toFixed(2)}); first scan ${firstMs.toFixed(0)} ms`,
      );
    } finally {
      tracker.close();
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
});

/**
 * A function's entry at a loop (src/build/loop-entries.ts), entered with the locals the function
 * had at one of that loop's headers, must go on exactly as the function did from there. The
 * function below logs every loop header it reaches with all its locals; entering at each logged
 * header must log the rest of the trace and return the same value.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import binaryen from 'binaryen';
import { addLoopEntries, entrySuffix } from '../../src/build/loop-entries.js';

// Nested loops, loops in both arms of an if, statements before and between them, a loop whose
// body holds another, and a break out of an outer block.
const wat = `(module
  (import "t" "log" (func $log (param i32 i32 i32 i32 i64)))
  (memory 1)
  (func $f (export "f") (param $n i32) (result i32)
    (local $i i32) (local $j i32) (local $acc i64)
    (local.set $acc (i64.const 7))
    (block $out
      (loop $outer
        (call $log (i32.const 1) (local.get $n) (local.get $i) (local.get $j) (local.get $acc))
        (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (local.get $i))))
        (if (i32.and (local.get $i) (i32.const 1))
          (then
            (local.set $j (i32.const 0))
            (loop $odd
              (call $log (i32.const 2) (local.get $n) (local.get $i) (local.get $j) (local.get $acc))
              (local.set $acc (i64.mul (local.get $acc) (i64.const 3)))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br_if $odd (i32.lt_u (local.get $j) (i32.const 3)))))
          (else
            (local.set $j (i32.const 5))
            (loop $even
              (call $log (i32.const 3) (local.get $n) (local.get $i) (local.get $j) (local.get $acc))
              (local.set $acc (i64.xor (local.get $acc) (i64.extend_i32_u (local.get $j))))
              (local.set $j (i32.sub (local.get $j) (i32.const 1)))
              (br_if $even (local.get $j)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $out (i32.ge_u (local.get $i) (local.get $n)))
        (br $outer)))
    (local.set $j (i32.const 0))
    (loop $tail
      (call $log (i32.const 4) (local.get $n) (local.get $i) (local.get $j) (local.get $acc))
      (local.set $acc (i64.rotl (local.get $acc) (i64.const 5)))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $tail (i32.lt_u (local.get $j) (i32.const 2))))
    (i32.wrap_i64 (i64.add (local.get $acc) (i64.shr_u (local.get $acc) (i64.const 32))))))`;

type Entry = [loop: number, n: number, i: number, j: number, acc: bigint];

/** Where `roam build` would put the hand-over scratch area; any free memory does here. */
const scratch = 1024;

function instantiate(): { f: (n: number) => number; at: (...entry: Entry) => number; trace: Entry[] } {
  const module = binaryen.parseText(wat);
  try {
    module.setFeatures(binaryen.Features.All);
    const entries = addLoopEntries(module, new Set(['f']), scratch);
    assert.deepEqual(entries, [`f${entrySuffix}`]);
    module.addFunctionExport(`f${entrySuffix}`, 'at');
    module.addMemoryExport('0', 'memory');
    assert.ok(module.validate(), 'the module with loop entries validates');
    const trace: Entry[] = [];
    const log = (...entry: Entry) => trace.push(entry);
    const instance = new WebAssembly.Instance(new WebAssembly.Module(module.emitBinary() as Uint8Array<ArrayBuffer>), {
      t: { log },
    });
    const exports = instance.exports as unknown as { f(n: number): number; at(): number; memory: WebAssembly.Memory };
    // The scratch layout: the loop number, then from byte 8 each local at its natural size, unaligned.
    const at = (loop: number, n: number, i: number, j: number, acc: bigint) => {
      const view = new DataView(exports.memory.buffer, scratch);
      view.setInt32(0, loop, true);
      view.setInt32(8, n, true);
      view.setInt32(12, i, true);
      view.setInt32(16, j, true);
      view.setBigInt64(20, acc, true);
      return exports.at();
    };
    return { f: exports.f, at, trace };
  } finally {
    module.dispose();
  }
}

test('entering a function at any loop header with its locals in the scratch area goes on as the function did', () => {
  const { f, at, trace } = instantiate();
  const result = f(6);
  const full = trace.splice(0);
  assert.ok(new Set(full.map((e) => e[0])).size === 4, 'the run reaches all four loops');
  full.forEach(([loop, n, i, j, acc], index) => {
    const resumed = at(loop, n, i, j, acc);
    assert.equal(resumed, result, `entered at header ${index} (loop ${loop})`);
    assert.deepEqual(trace.splice(0), full.slice(index), `trace after header ${index}`);
  });
});

test('the function itself is unchanged while no hand-over happens', () => {
  const { f, trace } = instantiate();
  const first = f(9);
  const firstTrace = trace.splice(0);
  assert.equal(f(9), first);
  assert.deepEqual(trace, firstTrace);
});

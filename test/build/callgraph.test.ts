import assert from 'node:assert/strict';
import { test } from 'node:test';
import binaryen from 'binaryen';
import { callGraph, recursiveFunctions, unwindingFunctions } from '../../src/build/callgraph.js';
import { instrument } from '../../src/build/instrument.js';

/**
 * even/odd recurse through each other without a loop; self calls itself; `reads` calls a
 * suspending import; the table holds even, leaf and reads. An indirect call of type (i32)->i32
 * can reach even and leaf only, one of type ()->() reaches only reads. Every function is exported, so
 * that inlining keeps it.
 */
const text = `(module
  (type $ii (func (param i32) (result i32)))
  (type $v (func))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (memory 2)
  (global $__stack_pointer (export "__stack_pointer") (mut i32) (i32.const 131072))
  (table 3 3 funcref)
  (elem (i32.const 0) $even $leaf $reads)
  (func $even (export "even") (type $ii) (if (result i32) (local.get 0) (then (call $odd (i32.sub (local.get 0) (i32.const 1)))) (else (i32.const 1))))
  (func $odd (export "odd") (type $ii) (if (result i32) (local.get 0) (then (call $even (i32.sub (local.get 0) (i32.const 1)))) (else (i32.const 0))))
  (func $self (export "self") (param i32) (if (local.get 0) (then (call $self (i32.sub (local.get 0) (i32.const 1))))))
  (func $leaf (export "leaf") (type $ii) (i32.mul (local.get 0) (local.get 0)))
  (func $reads (export "reads") (type $v) (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))))
  (func $calls_v (export "calls_v") (param i32) (call_indirect (type $v) (local.get 0)))
  (func $calls_ii (export "calls_ii") (param i32) (result i32) (call_indirect (type $ii) (local.get 0) (local.get 0)))
  (func $looper (export "looper") (param i32) (result i32) (local $s i32)
    (loop $l (local.set $s (i32.add (local.get $s) (call $leaf (local.get 0))))
      (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
    (local.get $s))
  (func $main (export "_start")
    (drop (call $looper (i32.const 3)))
    (drop (call $calls_ii (i32.const 0)))
    (call $calls_v (i32.const 2))
    (call $self (i32.const 3))
    (global.set $__stack_pointer (global.get $__stack_pointer)))
)`;

function withModule<T>(fn: (module: binaryen.Module) => T): T {
  const module = binaryen.parseText(text);
  try {
    return fn(module);
  } finally {
    module.dispose();
  }
}

test('indirect calls reach only the table functions of their type', () => {
  withModule((module) => {
    const graph = callGraph(module);
    const reach = (name: string) =>
      [...graph.functions.get(name)!.indirect].flatMap((key) => graph.indirectTargets.get(key) ?? []).sort();
    assert.deepEqual(reach('calls_ii'), ['even', 'leaf']);
    assert.deepEqual(reach('calls_v'), ['reads']);
    assert.equal(graph.functions.get('looper')!.loops.length, 1);
    assert.deepEqual([...graph.functions.get('main')!.calls].sort(), ['calls_ii', 'calls_v', 'looper', 'self']);
  });
});

test('functions on call-graph cycles are found, direct and mutual recursion alike', () => {
  withModule((module) => {
    assert.deepEqual([...recursiveFunctions(callGraph(module))].sort(), ['even', 'odd', 'self']);
  });
});

test('the unwinding set holds what can reach a suspending import, through type-matched indirect calls', () => {
  withModule((module) => {
    const graph = callGraph(module);
    assert.deepEqual([...unwindingFunctions(graph, ['wasi_snapshot_preview1.fd_read'])].sort(), [
      'calls_v',
      'main',
      'reads',
    ]);
    assert.deepEqual([...unwindingFunctions(graph, ['wasi_snapshot_preview1.*'])].sort(), ['calls_v', 'main', 'reads']);
    assert.deepEqual([...unwindingFunctions(graph, ['env.invoke_*'])], []);
  });
});

test('roam build instruments only the functions that can be on the stack at an unwind', () => {
  binaryen.setDebugInfo(true); // keep the names
  const wasm = withModule((module) => module.emitBinary());
  const { wasm: out } = instrument(wasm);
  const module = binaryen.readBinary(out);
  try {
    const bodies = new Map<string, string>();
    for (let i = 0; i < module.getNumFunctions(); i++) {
      const info = binaryen.getFunctionInfo(module.getFunctionByIndex(i));
      if (!info.module) bodies.set(info.name, binaryen.emitText(info.body));
    }
    // Asyncify's state global, as asyncify_get_state returns it.
    const getState = binaryen.getExportInfo(module.getExport('asyncify_get_state')).value;
    const state = binaryen.getExpressionInfo(binaryen.getFunctionInfo(module.getFunction(getState)).body);
    assert.equal(state.id, binaryen.GlobalGetId);
    const stateGet = `(global.get $${(state as binaryen.GlobalGetInfo).name})`;
    const instrumented = (name: string) => {
      const body = bodies.get(name);
      assert.ok(body !== undefined, `${name} is still in the module`);
      return body.includes(stateGet);
    };
    // Points: the loop of looper, the entries of even, odd and self (recursion without loops).
    for (const name of ['looper', 'self', 'reads', 'calls_v', 'main']) assert.ok(instrumented(name), name);
    // calls_ii can reach even/odd, which hold points: it is instrumented too; leaf is not.
    assert.ok(instrumented('calls_ii'));
    assert.ok(!instrumented('leaf'), 'leaf stays plain');
  } finally {
    module.dispose();
  }
});

import binaryen from 'binaryen';
import { RoamError } from '../platform/errors.js';
import { callGraph, recursiveFunctions, UnknownExpression, unwindingFunctions } from './callgraph.js';
import { addLoopEntries, handoverScratchBytes, keepEntriesApart } from './loop-entries.js';
import {
  type BuildOptions,
  defaultBuildOptions,
  instrumentationVersion,
  type ModuleManifest,
  manifestSection,
  sha256,
} from './manifest.js';
import { activeDataSegments, hasCustomSection } from './module-binary.js';
import { addTwins, canHaveTwins, type ResumeExports, specializeTwins } from './resume-clones.js';

/**
 * Imports through which the guest may be suspended. `*` matches any suffix (as Binaryen's
 * asyncify-imports). A host import that can block is listed here (whatever its module: the engine
 * wraps what the manifest lists).
 */
export const suspendingImports = [
  'roam.migration_point',
  'wasi_snapshot_preview1.fd_read',
  // A write to a full pipe (roam_posix.fd_pipe) waits for the reader.
  'wasi_snapshot_preview1.fd_write',
  'wasi_snapshot_preview1.poll_oneoff',
  'wasi_snapshot_preview1.sock_accept',
  'wasi_snapshot_preview1.sock_recv',
  'wasi_snapshot_preview1.sock_send',
  // getaddrinfo waits for the gateway's name lookup.
  'roam_posix.sock_resolve',
  // setjmp/longjmp calls go out through the host and back in (see runtime/src/sjlj.c).
  'env.invoke_*',
  // Green threads (src/engine/threads.ts): a thread that waits or yields unwinds so another runs.
  'roam_thread.futex_wait',
  'roam_thread.yield',
];

/** Budget global counted down at every migration point; the host refills it at each poll. */
export const budgetGlobal = 'roam_budget';
/**
 * Exports of roam cc's runtime that the host calls while the guest is suspended or rewinding
 * (see runtime/src): they must neither poll nor be instrumented, or a rewind would try to
 * resume inside them.
 */
const hostCalledExports = ['roam_stack_save', 'roam_stack_restore', 'roam_set_threw'];
/** binaryen.js has binaryen.Function.setBody; its typings misplace it on Module. */
const functionApi = (
  binaryen as unknown as { Function: { setBody(fn: binaryen.FunctionRef, body: binaryen.ExpressionRef): void } }
).Function;
/** The countdown every migration point calls (inlined before Asyncify); log-execution's name for it. */
const checkFunction = 'log_execution';
const loopApi = (
  binaryen as unknown as {
    Loop: {
      getBody(loop: binaryen.ExpressionRef): binaryen.ExpressionRef;
      setBody(loop: binaryen.ExpressionRef, body: binaryen.ExpressionRef): void;
    };
  }
).Loop;

/** A module `roam build` cannot make migratable. */
export class InstrumentError extends RoamError {
  readonly code = 'ROAM_INSTRUMENT';
}

/**
 * Turns any wasm32-wasi module into a migratable one: migration points, Asyncify, exported
 * mutable globals, a reserved Asyncify buffer and an embedded manifest.
 */
export function instrument(
  input: Uint8Array,
  options: BuildOptions = defaultBuildOptions,
): { wasm: Uint8Array; manifest: ModuleManifest } {
  if (hasCustomSection(input, manifestSection))
    throw new InstrumentError('module is already instrumented by roam build');
  let module: binaryen.Module;
  try {
    module = binaryen.readBinary(input);
  } catch (error) {
    throw new InstrumentError(`not a valid WebAssembly module: ${(error as Error).message}`, { cause: error });
  }
  try {
    module.setFeatures(
      module.getFeatures() |
        binaryen.Features.MutableGlobals |
        binaryen.Features.BulkMemory |
        binaryen.Features.SignExt |
        binaryen.Features.ReferenceTypes, // the resume table is a second table
    );
    if (!module.hasMemory()) throw new InstrumentError('module has no linear memory');

    const layout = reservedLayout(module, input, options.asyncifyBufferBytes);
    const helpers = hostCalledFunctions(module);
    const instrumented = addMigrationPoints(module, options.pollInterval, helpers);
    binaryen.setDebugInfo(true); // keep function names: guest stack traces stay readable
    binaryen.setOptimizeLevel(options.optimizeLevel);
    binaryen.setShrinkLevel(0);
    binaryen.setPassArgument('asyncify-imports', suspendingImports.join(','));
    const twinned = instrumented && canHaveTwins(module) ? new Set(instrumented) : undefined;
    if (twinned) for (const entry of addLoopEntries(module, instrumented!, layout.handoverScratch)) twinned.add(entry);
    if (instrumented) {
      // Exactly the functions that can be on the stack at an unwind; the others keep their plain code.
      const fast = twinned ?? instrumented;
      const twins = twinned ? addTwins(module, twinned) : [];
      binaryen.setPassArgument('asyncify-onlylist', asyncifyList([...fast, ...twins]));
    } else if (helpers.length > 0) {
      binaryen.setPassArgument('asyncify-removelist', asyncifyList(helpers));
    }
    module.runPasses(['asyncify']);
    binaryen.clearPassArguments();
    const resume: ResumeExports | undefined = twinned && specializeTwins(module, twinned);
    if (resume) keepEntriesApart(module);
    module.optimize();
    const globalExports = exportMutableGlobals(module);

    const manifest: ModuleManifest = {
      roam: 'migratable-module',
      instrumentationVersion,
      options,
      sourceDigest: sha256(input),
      asyncifyBuffer: layout.asyncifyBuffer,
      stackPointer: globalExports.get(layout.stackPointer)!,
      globalExports: [...globalExports.values()],
      suspendingImports,
      ...(resume && { resume }),
    };
    module.addCustomSection(manifestSection, new TextEncoder().encode(JSON.stringify(manifest)));
    if (!module.validate()) throw new InstrumentError('instrumented module failed validation');
    return { wasm: module.emitBinary(), manifest };
  } finally {
    module.dispose();
  }
}

/**
 * Places the hand-over scratch area (loop-entries.ts) and then the Asyncify buffer at the bottom
 * of the shadow-stack region. The buffer only holds data while the guest is unwound (not running),
 * and the scratch area only for the instant of a hand-over, so they can share the region with the
 * stack, which never reaches that deep while the guest runs normally; unlike memory past the data
 * segments, no allocator hands it out. (wasi-libc's malloc claims everything from __heap_base to
 * the end of memory.) The engine caps each unwind at the current stack pointer, so a guest whose
 * live stack does reach the buffer fails to stop rather than corrupting itself.
 */
function reservedLayout(
  module: binaryen.Module,
  input: Uint8Array,
  wantedBytes: number,
): Pick<ModuleManifest, 'asyncifyBuffer' | 'stackPointer'> & { handoverScratch: number } {
  const stackPointer = findStackPointer(module);
  if (!stackPointer)
    throw new InstrumentError(
      'module has no shadow stack pointer (__stack_pointer): not a wasm32-wasi C/Rust/Zig module?',
    );
  const top = stackPointer.initial;
  // The stack lies between the highest data below its top (none for --stack-first) and its top.
  const bottom = Math.max(
    0,
    ...activeDataSegments(input)
      .filter((s) => s.end <= top)
      .map((s) => s.end),
  );
  // Keep clear of address 0: a null data pointer reads as "no buffer" to some tools.
  const handoverScratch = (Math.max(bottom, 1024) + 15) & ~15;
  const address = handoverScratch + handoverScratchBytes;
  const bytes = Math.min(wantedBytes, Math.floor((top - address) / 2)) & ~15;
  if (bytes < 4096)
    throw new InstrumentError(`the module's stack (${top - bottom} bytes) is too small to hold an Asyncify buffer`);
  return { handoverScratch, asyncifyBuffer: { address, bytes }, stackPointer: stackPointer.name };
}

/** __stack_pointer by name, else global 0 as wasm-ld lays it out; `name` is its internal name. */
function findStackPointer(module: binaryen.Module): { name: string; initial: number } | undefined {
  const candidates: binaryen.GlobalInfo[] = [];
  for (let i = 0; i < module.getNumGlobals(); i++) candidates.push(binaryen.getGlobalInfo(module.getGlobalByIndex(i)));
  const info = candidates.find((g) => g.name === '__stack_pointer') ?? candidates[0];
  if (!info?.mutable || info.module || info.type !== binaryen.i32) return undefined;
  const init = binaryen.getExpressionInfo(info.init);
  if (init.id !== binaryen.ConstId) return undefined;
  return { name: info.name, initial: (init as binaryen.ConstInfo).value as number };
}

/**
 * Puts a migration point where it bounds how long the guest runs without reaching one: at every
 * loop header, and at the entry of every function on a call-graph cycle (recursion need not
 * pass a loop). A point is a countdown that calls the host only every `pollInterval` points, so
 * the common path is a decrement and a branch. Returns the functions Asyncify must instrument:
 * those that can be on the stack at an unwind (they reach a point or a suspending import through
 * direct calls or type-matched indirect calls), or undefined where the module holds code the
 * analysis cannot see into (then points go everywhere and Asyncify decides on its own).
 */
function addMigrationPoints(module: binaryen.Module, pollInterval: number, helpers: string[]): Set<string> | undefined {
  let graph: ReturnType<typeof callGraph> | undefined;
  try {
    graph = callGraph(module);
  } catch (error) {
    if (!(error instanceof UnknownExpression)) throw error;
  }
  if (!graph) {
    addMigrationPointsEverywhere(module, helpers);
    addCountdown(module, pollInterval, binaryen.i32);
  } else {
    addCountdown(module, pollInterval, binaryen.none);
    const point = () => module.call(checkFunction, [], binaryen.none);
    const recursive = recursiveFunctions(graph);
    for (const facts of graph.functions.values()) {
      if (helpers.includes(facts.name)) continue;
      for (const loop of facts.loops)
        loopApi.setBody(loop, module.block(null, [point(), loopApi.getBody(loop)], binaryen.auto));
      if (recursive.has(facts.name)) {
        const fn = module.getFunction(facts.name);
        functionApi.setBody(fn, module.block(null, [point(), binaryen.getFunctionInfo(fn).body], binaryen.auto));
      }
    }
  }
  inlineCountdown(module);
  if (!graph) return undefined;
  try {
    const unwinding = unwindingFunctions(callGraph(module), suspendingImports);
    for (const name of helpers) unwinding.delete(name);
    // A name Binaryen would misread leaves a function out: let Asyncify decide on its own instead.
    return [...unwinding].every(listSafe) ? unwinding : undefined;
  } catch (error) {
    if (!(error instanceof UnknownExpression)) throw error;
    return undefined;
  }
}

/** Binaryen's log-execution pass: a point at every function entry and exit, return and loop header. */
function addMigrationPointsEverywhere(module: binaryen.Module, helpers: string[]): void {
  const untouched = helpers.map((name) => {
    const fn = module.getFunction(name);
    return { fn, body: module.copyExpression(binaryen.getFunctionInfo(fn).body) };
  });
  module.runPasses(['log-execution']);
  for (const { fn, body } of untouched) functionApi.setBody(fn, body);
  // The pass calls an imported log_execution(i32); addCountdown defines it instead.
  module.removeFunction(checkFunction);
}

/**
 * The host's import, the budget global and the countdown function (`checkFunction`) that points
 * call; `param` is log-execution's point number (unused), or none.
 */
function addCountdown(module: binaryen.Module, pollInterval: number, param: binaryen.Type): void {
  module.addFunctionImport('roam_migration_point', 'roam', 'migration_point', binaryen.none, binaryen.none);
  module.addGlobal(budgetGlobal, binaryen.i32, true, module.i32.const(pollInterval));
  module.addGlobalExport(budgetGlobal, budgetGlobal);
  const budget = () => module.global.get(budgetGlobal, binaryen.i32);
  module.addFunction(
    checkFunction,
    param,
    binaryen.none,
    [],
    module.block(null, [
      module.global.set(budgetGlobal, module.i32.sub(budget(), module.i32.const(1))),
      module.if(module.i32.le_s(budget(), module.i32.const(0)), module.call('roam_migration_point', [], binaryen.none)),
    ]),
  );
}

/**
 * Inlines the countdown everywhere before Asyncify, so only functions that really contain a
 * migration point (and their callers) are instrumented.
 */
function inlineCountdown(module: binaryen.Module): void {
  binaryen.setAlwaysInlineMaxSize(16);
  module.runPasses(['inlining-optimizing']);
  binaryen.setAlwaysInlineMaxSize(2);
}

/**
 * A list of function names for an Asyncify pass argument. Binaryen splits it at commas, then
 * joins the pieces back while brackets are open, so that C++ names (`f(int, char)`) survive.
 */
function asyncifyList(names: Iterable<string>): string {
  return [...names].join(',');
}

/**
 * Whether Binaryen reads `name` back from an Asyncify list as itself: every comma in it inside
 * brackets, its brackets balanced (an `operator>` would swallow the names after it), and no
 * leading `@` (a response file).
 */
function listSafe(name: string): boolean {
  let nesting = 0;
  for (const c of name) {
    if ('(<[{'.includes(c)) nesting++;
    else if (')>]}'.includes(c)) nesting--;
    else if (c === ',' && nesting === 0) return false;
  }
  return nesting === 0 && !name.startsWith('@') && name.trim() === name && name !== '';
}

/** Internal names of the hostCalledExports this module has. */
function hostCalledFunctions(module: binaryen.Module): string[] {
  const names: string[] = [];
  for (let i = 0; i < module.getNumExports(); i++) {
    const info = binaryen.getExportInfo(module.getExportByIndex(i));
    if (info.kind === binaryen.ExternalFunction && hostCalledExports.includes(info.name)) names.push(info.value);
  }
  return names;
}

/**
 * Exports every mutable global that is not yet exported, so a snapshot can read and restore it.
 * Returns internal name -> export name, in global index order.
 */
function exportMutableGlobals(module: binaryen.Module): Map<string, string> {
  const exportedAs = new Map<string, string>();
  for (let i = 0; i < module.getNumExports(); i++) {
    const info = binaryen.getExportInfo(module.getExportByIndex(i));
    if (info.kind === binaryen.ExternalGlobal) exportedAs.set(info.value, info.name);
  }
  const names = new Map<string, string>();
  for (let i = 0; i < module.getNumGlobals(); i++) {
    const info = binaryen.getGlobalInfo(module.getGlobalByIndex(i));
    if (!info.mutable || info.module) continue;
    let exportName = exportedAs.get(info.name);
    if (!exportName) {
      exportName = `roam_global_${i}`;
      module.addGlobalExport(info.name, exportName);
    }
    names.set(info.name, exportName);
  }
  return names;
}

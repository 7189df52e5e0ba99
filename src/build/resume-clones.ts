import binaryen from 'binaryen';
import { forEachExpression } from './callgraph.js';
import { handoverFunction } from './loop-entries.js';

/**
 * Fast code that can unwind but never rewinds (docs/unwind-only.md). Asyncify makes every
 * instrumented function test its state at nearly every statement, because the same code both
 * runs and rewinds. Here each instrumented function `f` gets a twin `f$roam_resume` before
 * Asyncify runs; both come out of Asyncify alike (same body, same call indices, same saved
 * locals), so a frame one saves the other can restore. Afterwards:
 *
 * - `f` keeps only what running and unwinding need: every test for the normal or rewinding
 *   state is folded (it is never entered while rewinding), and the optimizer drops the rest;
 * - the twin keeps Asyncify's rewind; its calls go to the twins of their callees (direct calls
 *   retargeted, indirect calls through a copy of the table that lists twins), so a rewind runs
 *   only twins; and a twin entered in the normal state (a call made by a restored frame once
 *   the rewind is over) passes straight on to the fast function.
 *
 * The engine starts a rewind at the twin of the entry (`resumeExports`), and setjmp's invoke
 * calls through the resume table while rewinding. Frames that were on the stack at a rewind
 * run their twin's code until they return; everything they call runs fast.
 */

/** Names the twin of a function. */
export const resumeSuffix = '$roam_resume';

/** Exports through which the engine enters a rewind; absent when a module has no twins. */
export interface ResumeExports {
  /** The twin of `_start`. */
  start: string;
  /** The twin of roam_thread_start (green threads), if the module has one. */
  threadStart?: string;
  /** A copy of the indirect function table with twins in place of instrumented functions. */
  table?: string;
}

const stateGlobal = '__asyncify_state';
const normalState = 0;
const rewindingState = 2;

type Ref = binaryen.ExpressionRef;
const api = binaryen as unknown as {
  Function: { setBody(fn: binaryen.FunctionRef, body: Ref): void };
  Call: { getTarget(ref: Ref): string; setTarget(ref: Ref, name: string): void };
  CallIndirect: { getTable(ref: Ref): string; setTable(ref: Ref, name: string): void };
  GlobalGet: { getName(ref: Ref): string };
  If: { getCondition(ref: Ref): Ref; setCondition(ref: Ref, v: Ref): void };
  LocalSet: { getValue(ref: Ref): Ref; setValue(ref: Ref, v: Ref): void };
  Binary: { getOp(ref: Ref): number; getLeft(ref: Ref): Ref; getRight(ref: Ref): Ref; setLeft(ref: Ref, v: Ref): void };
  Unary: { getOp(ref: Ref): number; getValue(ref: Ref): Ref; setValue(ref: Ref, v: Ref): void };
  Const: { getValueI32(ref: Ref): number };
};

/**
 * Whether this module's twins can be kept in step with its tables: a table imported or changed at
 * run time (table.set, table.grow) could not be mirrored by the resume table.
 */
export function canHaveTwins(module: binaryen.Module): boolean {
  for (let i = 0; i < module.getNumTables(); i++) {
    if (binaryen.getTableInfo(module.getTableByIndex(i)).module) return false;
  }
  for (let i = 0; i < module.getNumFunctions(); i++) {
    const info = binaryen.getFunctionInfo(module.getFunctionByIndex(i));
    if (info.module) continue;
    let changesTable = false;
    forEachExpression(info.body, (_ref, id) => {
      if (id === binaryen.TableSetId || id === binaryen.TableGrowId) changesTable = true;
    });
    if (changesTable) return false;
  }
  return true;
}

/** Before Asyncify: a twin of every function in `instrumented`; returns the twins' names. */
export function addTwins(module: binaryen.Module, instrumented: Set<string>): string[] {
  const twins: string[] = [];
  for (const name of instrumented) {
    const info = binaryen.getFunctionInfo(module.getFunction(name));
    module.addFunction(name + resumeSuffix, info.params, info.results, info.vars, module.copyExpression(info.body));
    twins.push(name + resumeSuffix);
  }
  return twins;
}

/**
 * After Asyncify, before the optimizer: folds the fast functions, points the twins at each other,
 * adds the resume table and the entry exports.
 */
export function specializeTwins(module: binaryen.Module, instrumented: Set<string>): ResumeExports | undefined {
  if (instrumented.size === 0 || !module.getGlobal(stateGlobal)) return undefined;
  for (const name of instrumented) foldRewinding(module, module.getFunction(name));
  const tables = addResumeTables(module, instrumented);
  const twinHandover = `${handoverFunction}${resumeSuffix}`;
  const isNormal = () => module.i32.eqz(module.global.get(stateGlobal, binaryen.i32));
  module.addFunction(twinHandover, binaryen.none, binaryen.i32, [], isNormal());
  for (const name of instrumented) {
    const twin = module.getFunction(name + resumeSuffix);
    forEachExpression(binaryen.getFunctionInfo(twin).body, (ref, id) => {
      if (id === binaryen.CallId) {
        const target = api.Call.getTarget(ref);
        if (instrumented.has(target)) api.Call.setTarget(ref, target + resumeSuffix);
        else if (target === handoverFunction) api.Call.setTarget(ref, twinHandover);
      } else if (id === binaryen.CallIndirectId) {
        const table = tables.get(api.CallIndirect.getTable(ref));
        if (table) api.CallIndirect.setTable(ref, table);
      }
    });
    passOnWhenNormal(module, name, twin);
  }
  const exportName = (internal: string) => `roam_resume:${internal}`;
  const entry = (exported: string): string | undefined => {
    const internal = exportedFunction(module, exported);
    if (!internal || !instrumented.has(internal)) return undefined;
    module.addFunctionExport(internal + resumeSuffix, exportName(exported));
    return exportName(exported);
  };
  const start = entry('_start');
  if (!start) return undefined;
  const threadStart = entry('roam_thread_start');
  const [table] = tables.values();
  if (table) module.addTableExport(table, 'roam_resume:table');
  return { start, ...(threadStart && { threadStart }), ...(table && { table: 'roam_resume:table' }) };
}

/**
 * In a fast function the state is never "rewinding", no hand-over happens (loop-entries.ts), and
 * wherever Asyncify tests for the normal state it is normal (after a call that unwinds, Asyncify branches straight to the save code):
 * those tests read a constant instead, and the optimizer removes what they guarded.
 */
function foldRewinding(module: binaryen.Module, fn: binaryen.FunctionRef): void {
  const isState = (ref: Ref) =>
    binaryen.getExpressionId(ref) === binaryen.GlobalGetId && api.GlobalGet.getName(ref) === stateGlobal;
  const constant = (ref: Ref) =>
    binaryen.getExpressionId(ref) === binaryen.ConstId ? api.Const.getValueI32(ref) : undefined;
  // The optimizer does not inline the hand-over's placeholder into every large function, which
  // would leave a call at each loop header: its value is 0 here, wherever Asyncify moved the call.
  const isHandover = (ref: Ref) =>
    binaryen.getExpressionId(ref) === binaryen.CallId && api.Call.getTarget(ref) === handoverFunction;
  forEachExpression(binaryen.getFunctionInfo(fn).body, (ref, id) => {
    if (id === binaryen.IfId && isHandover(api.If.getCondition(ref))) {
      api.If.setCondition(ref, module.i32.const(0));
    } else if (id === binaryen.LocalSetId && isHandover(api.LocalSet.getValue(ref))) {
      api.LocalSet.setValue(ref, module.i32.const(0));
    } else if (
      id === binaryen.UnaryId &&
      api.Unary.getOp(ref) === binaryen.EqZInt32 &&
      isState(api.Unary.getValue(ref))
    ) {
      api.Unary.setValue(ref, module.i32.const(normalState));
    } else if (id === binaryen.BinaryId && isState(api.Binary.getLeft(ref))) {
      const op = api.Binary.getOp(ref);
      const against = constant(api.Binary.getRight(ref));
      const folds = against === normalState || against === rewindingState;
      if ((op === binaryen.EqInt32 || op === binaryen.NeInt32) && folds)
        api.Binary.setLeft(ref, module.i32.const(normalState));
    }
  });
}

/** A twin entered in the normal state is a new call from a restored frame: the fast function serves it. */
function passOnWhenNormal(module: binaryen.Module, fast: string, twin: binaryen.FunctionRef): void {
  const info = binaryen.getFunctionInfo(twin);
  const params = binaryen.expandType(info.params).map((type, i) => module.local.get(i, type));
  const call = module.call(fast, params, info.results);
  const passOn = info.results === binaryen.none ? module.block(null, [call, module.return()]) : module.return(call);
  const isNormal = module.i32.eqz(module.global.get(stateGlobal, binaryen.i32));
  api.Function.setBody(twin, module.block(null, [module.if(isNormal, passOn), info.body], info.results));
}

/** For each defined table: a copy listing twins where it lists instrumented functions. */
function addResumeTables(module: binaryen.Module, instrumented: Set<string>): Map<string, string> {
  const copies = new Map<string, string>();
  const tableCount = module.getNumTables();
  for (let i = 0; i < tableCount; i++) {
    const table = module.getTableByIndex(i);
    const info = binaryen.getTableInfo(table);
    const copy = `${info.name}${resumeSuffix}`;
    module.addTable(copy, info.initial, info.max ?? 0xffffffff);
    // binaryen.js takes the table itself and returns segments, whatever its typings say.
    const segments = (module.getTableSegments as unknown as (t: binaryen.TableRef) => binaryen.ElementSegmentRef[])(
      table,
    );
    for (const segment of segments) {
      const element = binaryen.getElementSegmentInfo(segment);
      const names = element.data.map((name) => (instrumented.has(name) ? name + resumeSuffix : name));
      const offset = module.copyExpression(element.offset as unknown as Ref);
      module.addActiveElementSegment(copy, `${element.name}${resumeSuffix}`, names, offset);
    }
    copies.set(info.name, copy);
  }
  return copies;
}

/** The internal name of the function exported as `name`. */
function exportedFunction(module: binaryen.Module, name: string): string | undefined {
  for (let i = 0; i < module.getNumExports(); i++) {
    const info = binaryen.getExportInfo(module.getExportByIndex(i));
    if (info.kind === binaryen.ExternalFunction && info.name === name) return info.value;
  }
  return undefined;
}

import binaryen from 'binaryen';

/**
 * What `roam build` needs to know about a module's functions to place migration points and to
 * give Asyncify an exact set: every loop, every call, and where indirect calls may go. Indirect
 * calls are resolved by type: a `call_indirect (type T)` can only reach a function of type T that
 * is in a table (an element segment) or whose reference is taken (`ref.func`).
 */
export interface FunctionFacts {
  name: string;
  /** Every `loop` in the body. */
  loops: binaryen.ExpressionRef[];
  /** Targets of direct calls, imports included. */
  calls: Set<string>;
  /** Signatures (`signatureKey`) of the indirect calls it makes. */
  indirect: Set<string>;
}

export interface CallGraph {
  /** Defined (not imported) functions, by internal name. */
  functions: Map<string, FunctionFacts>;
  /** Imported functions: internal name -> "module.base". */
  imports: Map<string, string>;
  /** Functions an indirect call of each signature may reach. */
  indirectTargets: Map<string, string[]>;
}

/** An expression kind the walker does not know: the module is instrumented the conservative way. */
export class UnknownExpression extends Error {}

type Ref = binaryen.ExpressionRef;
type Getter = (ref: Ref) => Ref;
type ListGetter = (ref: Ref) => Ref[];
/** binaryen.js's per-kind expression classes (binaryen.Loop.getBody...), which its typings lack. */
const kinds = binaryen as unknown as Record<string, Record<string, (ref: Ref) => unknown>>;

/** For each expression id: the getters of its children, single and list-valued. */
const children = new Map<number, { single: Getter[]; lists: ListGetter[] }>();
function kind(name: string, single: string[] = [], lists: string[] = []): void {
  const id = (binaryen as unknown as Record<string, number>)[`${name}Id`];
  if (id === undefined) return; // not in this binaryen: a module cannot contain it
  const getter = (g: string) => {
    const fn = kinds[name]?.[g];
    if (!fn) throw new Error(`binaryen.${name}.${g} is missing`);
    return fn;
  };
  children.set(id, {
    single: single.map((g) => getter(g) as Getter),
    lists: lists.map((g) => getter(g) as ListGetter),
  });
}
kind('Block', [], ['getChildren']);
kind('If', ['getCondition', 'getIfTrue', 'getIfFalse']);
kind('Loop', ['getBody']);
kind('Break', ['getCondition', 'getValue']);
kind('Switch', ['getCondition', 'getValue']);
kind('Call', [], ['getOperands']);
kind('CallIndirect', ['getTarget'], ['getOperands']);
kind('LocalGet');
kind('LocalSet', ['getValue']);
kind('GlobalGet');
kind('GlobalSet', ['getValue']);
kind('TableGet', ['getIndex']);
kind('TableSet', ['getIndex', 'getValue']);
kind('TableSize');
kind('TableGrow', ['getValue', 'getDelta']);
kind('Load', ['getPtr']);
kind('Store', ['getPtr', 'getValue']);
kind('Const');
kind('Unary', ['getValue']);
kind('Binary', ['getLeft', 'getRight']);
kind('Select', ['getIfTrue', 'getIfFalse', 'getCondition']);
kind('Drop', ['getValue']);
kind('Return', ['getValue']);
kind('Nop');
kind('Unreachable');
kind('Pop');
kind('MemorySize');
kind('MemoryGrow', ['getDelta']);
kind('AtomicRMW', ['getPtr', 'getValue']);
kind('AtomicCmpxchg', ['getPtr', 'getExpected', 'getReplacement']);
kind('AtomicWait', ['getPtr', 'getExpected', 'getTimeout']);
kind('AtomicNotify', ['getPtr', 'getNotifyCount']);
kind('AtomicFence');
kind('SIMDExtract', ['getVec']);
kind('SIMDReplace', ['getVec', 'getValue']);
kind('SIMDShuffle', ['getLeft', 'getRight']);
kind('SIMDTernary', ['getA', 'getB', 'getC']);
kind('SIMDShift', ['getVec', 'getShift']);
kind('SIMDLoad', ['getPtr']);
kind('SIMDLoadStoreLane', ['getPtr', 'getVec']);
kind('MemoryInit', ['getDest', 'getOffset', 'getSize']);
kind('DataDrop');
kind('MemoryCopy', ['getDest', 'getSource', 'getSize']);
kind('MemoryFill', ['getDest', 'getValue', 'getSize']);
kind('RefNull');
kind('RefIsNull', ['getValue']);
kind('RefAs', ['getValue']);
kind('RefFunc');
kind('RefEq', ['getLeft', 'getRight']);
kind('Try', ['getBody'], ['getCatchBodies']);
kind('Throw', [], ['getOperands']);
kind('Rethrow');
kind('TupleMake', [], ['getOperands']);
kind('TupleExtract', ['getTuple']);

const callApi = kinds.Call as unknown as { getTarget(ref: Ref): string };
const callIndirectApi = kinds.CallIndirect as unknown as { getParams(ref: Ref): number; getResults(ref: Ref): number };
const refFuncApi = kinds.RefFunc as unknown as { getFunc(ref: Ref): string };

/** Calls `visit` on every expression under `body`, parents first. Throws UnknownExpression. */
export function forEachExpression(body: Ref, visit: (ref: Ref, id: number) => void): void {
  const stack: Ref[] = body ? [body] : [];
  while (stack.length > 0) {
    const ref = stack.pop()!;
    const id = binaryen.getExpressionId(ref);
    const kindOf = children.get(id);
    if (!kindOf) throw new UnknownExpression(`expression id ${id}`);
    visit(ref, id);
    for (const get of kindOf.single) {
      const child = get(ref);
      if (child) stack.push(child);
    }
    for (const get of kindOf.lists) for (const child of get(ref)) if (child) stack.push(child);
  }
}

/** Identifies a function type by its params and results (binaryen interns types). */
export function signatureKey(params: binaryen.Type, results: binaryen.Type): string {
  return `${params}:${results}`;
}

/** Walks every function body once. Throws UnknownExpression on a kind it cannot see into. */
export function callGraph(module: binaryen.Module): CallGraph {
  const functions = new Map<string, FunctionFacts>();
  const imports = new Map<string, string>();
  const signatures = new Map<string, string>();
  const referenced = new Set<string>();
  for (let i = 0; i < module.getNumFunctions(); i++) {
    const info = binaryen.getFunctionInfo(module.getFunctionByIndex(i));
    signatures.set(info.name, signatureKey(info.params, info.results));
    if (info.module) {
      imports.set(info.name, `${info.module}.${info.base}`);
      continue;
    }
    const facts: FunctionFacts = { name: info.name, loops: [], calls: new Set(), indirect: new Set() };
    try {
      forEachExpression(info.body, (ref, id) => {
        if (id === binaryen.LoopId) facts.loops.push(ref);
        else if (id === binaryen.CallId) facts.calls.add(callApi.getTarget(ref));
        else if (id === binaryen.CallIndirectId)
          facts.indirect.add(signatureKey(callIndirectApi.getParams(ref), callIndirectApi.getResults(ref)));
        else if (id === binaryen.RefFuncId) referenced.add(refFuncApi.getFunc(ref));
      });
    } catch (error) {
      if (error instanceof UnknownExpression) throw new UnknownExpression(`${error.message} in ${info.name}`);
      throw error;
    }
    functions.set(info.name, facts);
  }
  for (let i = 0; i < module.getNumElementSegments(); i++) {
    for (const name of binaryen.getElementSegmentInfo(module.getElementSegmentByIndex(i)).data) referenced.add(name);
  }
  const indirectTargets = new Map<string, string[]>();
  for (const name of referenced) {
    const key = signatures.get(name);
    if (key === undefined || !functions.has(name)) continue; // imported functions do not call back in
    const list = indirectTargets.get(key) ?? [];
    list.push(name);
    indirectTargets.set(key, list);
  }
  return { functions, imports, indirectTargets };
}

/** Defined functions `name` may call: direct calls, and the table functions its indirect calls may reach. */
export function callees(graph: CallGraph, facts: FunctionFacts): Set<string> {
  const out = new Set<string>();
  for (const name of facts.calls) if (graph.functions.has(name)) out.add(name);
  for (const key of facts.indirect) for (const name of graph.indirectTargets.get(key) ?? []) out.add(name);
  return out;
}

/** Functions on a call-graph cycle (recursion, direct or through other functions). Tarjan, iterative. */
export function recursiveFunctions(graph: CallGraph): Set<string> {
  const edges = new Map<string, string[]>();
  for (const facts of graph.functions.values()) edges.set(facts.name, [...callees(graph, facts)]);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const result = new Set<string>();
  let counter = 0;
  for (const root of edges.keys()) {
    if (index.has(root)) continue;
    const work: { node: string; next: number }[] = [{ node: root, next: 0 }];
    index.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work.at(-1)!;
      const out = edges.get(frame.node)!;
      if (frame.next < out.length) {
        const to = out[frame.next++]!;
        if (!index.has(to)) {
          index.set(to, counter);
          low.set(to, counter++);
          stack.push(to);
          onStack.add(to);
          work.push({ node: to, next: 0 });
        } else if (onStack.has(to)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(to)!));
        }
        continue;
      }
      work.pop();
      const parent = work.at(-1);
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) !== index.get(frame.node)) continue;
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== frame.node);
      if (component.length > 1 || out.includes(frame.node)) for (const name of component) result.add(name);
    }
  }
  return result;
}

/**
 * Functions that can be on the stack when the guest unwinds: those that call an import matching
 * `suspending` (`*` ends a prefix), and every function that can call one of them, directly or
 * through a type-matched indirect call.
 */
export function unwindingFunctions(graph: CallGraph, suspending: readonly string[]): Set<string> {
  const matches = (full: string) =>
    suspending.some((pattern) => (pattern.endsWith('*') ? full.startsWith(pattern.slice(0, -1)) : full === pattern));
  const suspendingNames = new Set([...graph.imports].filter(([, full]) => matches(full)).map(([name]) => name));
  const callers = new Map<string, string[]>();
  const result = new Set<string>();
  const queue: string[] = [];
  for (const facts of graph.functions.values()) {
    for (const to of callees(graph, facts)) {
      const list = callers.get(to) ?? [];
      list.push(facts.name);
      callers.set(to, list);
    }
    if ([...facts.calls].some((name) => suspendingNames.has(name))) {
      result.add(facts.name);
      queue.push(facts.name);
    }
  }
  while (queue.length > 0) {
    for (const caller of callers.get(queue.pop()!) ?? []) {
      if (result.has(caller)) continue;
      result.add(caller);
      queue.push(caller);
    }
  }
  return result;
}

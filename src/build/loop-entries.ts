import binaryen from 'binaryen';

/**
 * Entries into a function at its loops, so that a frame restored into twin code (resume-clones.ts)
 * is back in fast code at its next loop header (docs/unwind-only.md). Before Asyncify, for each
 * instrumented function `f` whose loops sit in statement position (reached from the body through
 * blocks, ifs and loops only; they are numbered in preorder):
 *
 * - `f$roam_at` is `f` entered with no arguments: it reads the loop to start at and all of `f`'s
 *   locals from the hand-over scratch area, skips the statements before the path to that loop (one
 *   unsigned compare on a local each), takes the arm of each if on the path that holds it, and
 *   clears the target at the loop's header, after which the function simply runs;
 * - at each loop header of `f`, a hand-over: `if (roam_handover()) { scratch.loop = n; br tail }`,
 *   where the one tail of the function writes its locals to the scratch area and calls `f$roam_at`,
 *   again for as long as it returns asking for it (`roam_reenter` set);
 * - at each loop header of `f$roam_at`, a hand-over that asks for that: its tail writes the locals
 *   to the scratch area (the loop number is already there), sets `roam_reenter` and returns.
 *
 * One tail per function keeps the code linear in loops plus locals (a function with 200 loops and
 * 188 locals, bzip2's decompressor, would otherwise get 200 copies of its frame) and makes each
 * hand-over a single call site for Asyncify.
 *
 * `roam_handover()` is a placeholder (a function Asyncify leaves alone, returning 0): fast code
 * keeps it, so the optimizer removes the hand-overs there; specializeTwins points the twins' calls
 * at a function that returns whether the state is normal, which in a twin holds only once its
 * rewind is over. So a restored frame of `f` runs twin code to its next loop header, then fast
 * `f$roam_at` on top of it; when that frame is rewound later (the twin of `f$roam_at`), it hands
 * back to the twin of `f` below it, which calls fast `f$roam_at` again: the stack never grows.
 */

export const entrySuffix = '$roam_at';
/** The placeholder condition of every hand-over (returns 0). */
export const handoverFunction = 'roam_handover';
/** Set by an entry's twin that wants to be entered again (scratch holds where and how). */
const reenterGlobal = 'roam_reenter';
/** Bytes `roam build` sets aside for the hand-over scratch area. */
export const handoverScratchBytes = 16 * 1024;
/** The block around a function's body that its hand-overs leave for the tail. */
const tailLabel = 'roam_handover_tail';

type Ref = binaryen.ExpressionRef;
const api = binaryen as unknown as {
  Block: { getChildren(ref: Ref): Ref[]; setChildren(ref: Ref, children: Ref[]): void };
  If: {
    getCondition(ref: Ref): Ref;
    setCondition(ref: Ref, cond: Ref): void;
    getIfTrue(ref: Ref): Ref;
    getIfFalse(ref: Ref): Ref;
  };
  Loop: { getBody(ref: Ref): Ref; setBody(ref: Ref, body: Ref): void };
  Function: { setBody(fn: binaryen.FunctionRef, body: Ref): void };
};

/**
 * Adds the hand-overs to every function of `instrumented` and its `$roam_at` entry; returns the
 * entries (functions to instrument as well). `scratch` is the address of handoverScratchBytes of
 * memory no allocator hands out.
 */
export function addLoopEntries(module: binaryen.Module, instrumented: Set<string>, scratch: number): string[] {
  module.addFunction(handoverFunction, binaryen.none, binaryen.i32, [], module.i32.const(0));
  module.addGlobal(reenterGlobal, binaryen.i32, true, module.i32.const(0));
  const entries: string[] = [];
  for (const name of instrumented) {
    const fn = module.getFunction(name);
    const info = binaryen.getFunctionInfo(fn);
    const locals = [...binaryen.expandType(info.params), ...info.vars];
    const frame = ScratchFrame.of(module, locals, scratch);
    const singleResult = info.results === binaryen.none || basicTypes().includes(info.results);
    if (!frame || !singleResult) continue;
    const loops = statementLoops(info.body);
    if (loops.length === 0) continue;
    const entry = name + entrySuffix;
    const target = locals.length;
    const entryBody = module.copyExpression(info.body);
    for (const [i, loop] of statementLoops(entryBody).entries())
      prependToLoop(module, loop, handOver(module, frame, i + 1));
    new EntryBuilder(module, target).visit(entryBody);
    const enter = [...frame.reload(), module.local.set(target, frame.loopNumber())];
    const ask = [
      ...frame.save(),
      module.global.set(reenterGlobal, module.i32.const(1)),
      module.return(zero(module, info.results)),
    ];
    module.addFunction(
      entry,
      binaryen.none,
      info.results,
      [...locals, binaryen.i32],
      module.block(null, [...enter, withTail(module, entryBody, info.results, ask)], binaryen.auto),
    );
    for (const [i, loop] of loops.entries()) prependToLoop(module, loop, handOver(module, frame, i + 1));
    const handedOver = callUntilDone(module, entry, info.results);
    const runEntry = [...frame.save(), info.results === binaryen.none ? handedOver : module.return(handedOver)];
    api.Function.setBody(fn, withTail(module, info.body, info.results, runEntry));
    entries.push(entry);
  }
  return entries;
}

/**
 * Keeps the optimizer from inlining the entries (and their twins) into their one caller, the tail
 * of `f`'s twin: the fast code of a restored frame would then run inside that twin, one function
 * twice as large, which V8 compiles to slower code (Lua's interpreter loop after a restore ran
 * 1.3-1.6x slower than before it).
 */
export function keepEntriesApart(module: binaryen.Module): void {
  binaryen.setPassArgument('no-inline', `*${entrySuffix}*`);
  module.runPasses(['no-inline']);
  binaryen.setPassArgument('no-inline', null);
}

const basicTypes = () => [binaryen.i32, binaryen.i64, binaryen.f32, binaryen.f64, binaryen.v128];

/** A function's locals laid out in the scratch area, after the loop number (at offset 0). */
class ScratchFrame {
  private constructor(
    private readonly m: binaryen.Module,
    private readonly locals: binaryen.Type[],
    private readonly scratch: number,
    private readonly offsets: number[],
  ) {}

  /** Undefined when the locals do not fit or are not all numbers. */
  static of(m: binaryen.Module, locals: binaryen.Type[], scratch: number): ScratchFrame | undefined {
    const offsets: number[] = [];
    let at = 8;
    for (const type of locals) {
      if (!basicTypes().includes(type)) return undefined;
      offsets.push(at);
      at += type === binaryen.v128 ? 16 : type === binaryen.i64 || type === binaryen.f64 ? 8 : 4;
    }
    return at > handoverScratchBytes ? undefined : new ScratchFrame(m, locals, scratch, offsets);
  }

  private address(): Ref {
    return this.m.i32.const(this.scratch);
  }

  loopNumber(): Ref {
    return this.m.i32.load(0, 4, this.address());
  }

  setLoopNumber(number: number): Ref {
    return this.m.i32.store(0, 4, this.address(), this.m.i32.const(number));
  }

  save(): Ref[] {
    return this.locals.map((type, i) => {
      const value = this.m.local.get(i, type);
      return this.typed(type).store(this.offsets[i]!, 1, this.address(), value);
    });
  }

  reload(): Ref[] {
    return this.locals.map((type, i) =>
      this.m.local.set(i, this.typed(type).load(this.offsets[i]!, 1, this.address())),
    );
  }

  private typed(type: binaryen.Type): {
    load(offset: number, align: number, ptr: Ref): Ref;
    store(offset: number, align: number, ptr: Ref, value: Ref): Ref;
  } {
    const m = this.m;
    if (type === binaryen.i32) return m.i32;
    if (type === binaryen.i64) return m.i64;
    if (type === binaryen.f32) return m.f32;
    if (type === binaryen.f64) return m.f64;
    return m.v128;
  }
}

/** A hand-over at loop `number`: note the loop and leave for the function's tail. */
function handOver(m: binaryen.Module, frame: ScratchFrame, number: number): Ref {
  return m.if(
    m.call(handoverFunction, [], binaryen.i32),
    m.block(null, [frame.setLoopNumber(number), m.br(tailLabel)]),
  );
}

/** `body` inside the block its hand-overs leave, returning its value; after that block, `tail`. */
function withTail(m: binaryen.Module, body: Ref, results: binaryen.Type, tail: Ref[]): Ref {
  const run = results === binaryen.none ? [body, m.return()] : [m.return(body)];
  return m.block(null, [m.block(tailLabel, run), ...tail], binaryen.auto);
}

/** Calls the entry, and again for as long as it returns asking for it; the value it returned. */
function callUntilDone(m: binaryen.Module, entry: string, results: binaryen.Type): Ref {
  const done = 'roam_handed_over';
  const notAsked = () => m.i32.eqz(m.global.get(reenterGlobal, binaryen.i32));
  const call = m.call(entry, [], results);
  const leaveUnlessAsked =
    results === binaryen.none ? [call, m.br(done, notAsked())] : [m.drop(m.br(done, notAsked(), call))];
  const again = 'roam_enter_again';
  const loop = m.loop(
    again,
    m.block(null, [...leaveUnlessAsked, m.global.set(reenterGlobal, m.i32.const(0)), m.br(again)]),
  );
  return m.block(done, [loop], results);
}

/** A value of `results` for a return whose value nobody reads (the caller enters again). */
function zero(m: binaryen.Module, results: binaryen.Type): Ref | undefined {
  if (results === binaryen.i32) return m.i32.const(0);
  if (results === binaryen.i64) return (m.i64.const as unknown as (value: bigint) => Ref)(0n);
  if (results === binaryen.f32) return m.f32.const(0);
  if (results === binaryen.f64) return m.f64.const(0);
  if (results === binaryen.v128) return m.v128.const(new Array(16).fill(0));
  return undefined;
}

function prependToLoop(module: binaryen.Module, loop: Ref, statement: Ref): void {
  api.Loop.setBody(loop, module.block(null, [statement, api.Loop.getBody(loop)], binaryen.auto));
}

/** The loops in statement position, in preorder (the numbering both walks share). */
function statementLoops(body: Ref): Ref[] {
  const loops: Ref[] = [];
  const walk = (ref: Ref): void => {
    if (!ref) return;
    const id = binaryen.getExpressionId(ref);
    if (id === binaryen.BlockId) for (const child of api.Block.getChildren(ref)) walk(child);
    else if (id === binaryen.IfId) {
      walk(api.If.getIfTrue(ref));
      walk(api.If.getIfFalse(ref));
    } else if (id === binaryen.LoopId) {
      loops.push(ref);
      walk(api.Loop.getBody(ref));
    }
  };
  walk(body);
  return loops;
}

/**
 * Rewrites a copy of a body so that it starts at the loop numbered by local `target` (1-based,
 * preorder as statementLoops). Skipping past a statement means the target lies further on:
 * its number is above the last number seen by the end of that statement.
 */
class EntryBuilder {
  private seen = 0;

  constructor(
    private readonly module: binaryen.Module,
    private readonly target: number,
  ) {}

  /** Rewrites `ref` in place; whether it holds a numbered loop. */
  visit(ref: Ref): boolean {
    if (!ref) return false;
    const id = binaryen.getExpressionId(ref);
    if (id === binaryen.BlockId) return this.block(ref);
    if (id === binaryen.IfId) return this.if(ref);
    if (id === binaryen.LoopId) return this.loop(ref);
    return false;
  }

  private targetGet(): Ref {
    return this.module.local.get(this.target, binaryen.i32);
  }

  /** Statements before the last one that holds a loop run only while not skipping past them. */
  private block(ref: Ref): boolean {
    const children = api.Block.getChildren(ref);
    const seenAfter: number[] = [];
    let lastWithLoop = -1;
    children.forEach((child, i) => {
      if (this.visit(child)) lastWithLoop = i;
      seenAfter.push(this.seen);
    });
    if (lastWithLoop < 0) return false;
    const m = this.module;
    const guarded = children.map((child, i) =>
      i < lastWithLoop ? m.if(m.i32.le_u(this.targetGet(), m.i32.const(seenAfter[i]!)), child) : child,
    );
    api.Block.setChildren(ref, guarded);
    return true;
  }

  /** While skipping, the condition is whether the target is in the first arm. */
  private if(ref: Ref): boolean {
    const inTrue = this.visit(api.If.getIfTrue(ref));
    const endOfTrue = this.seen;
    const inFalse = this.visit(api.If.getIfFalse(ref));
    if (!inTrue && !inFalse) return false;
    const m = this.module;
    const skipping = this.targetGet();
    const armWithTarget = m.i32.le_u(this.targetGet(), m.i32.const(endOfTrue));
    api.If.setCondition(ref, m.if(skipping, armWithTarget, api.If.getCondition(ref)));
    return true;
  }

  /** Its header ends the skipping when it is the target. */
  private loop(ref: Ref): boolean {
    const number = ++this.seen;
    const body = api.Loop.getBody(ref);
    this.visit(body);
    const m = this.module;
    const arrived = m.if(m.i32.eq(this.targetGet(), m.i32.const(number)), m.local.set(this.target, m.i32.const(0)));
    api.Loop.setBody(ref, m.block(null, [arrived, body], binaryen.auto));
    return true;
  }
}

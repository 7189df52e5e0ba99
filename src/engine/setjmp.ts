/**
 * Host side of the setjmp/longjmp lowering `roam cc` uses (see runtime/src/sjlj.c): calls made by
 * a function that calls setjmp arrive here as invoke_<signature>(tableIndex, ...args), and
 * longjmp throws a LongjmpSignal that the nearest invoke catches.
 */
export class LongjmpSignal {}

interface SetjmpExports {
  __indirect_function_table: WebAssembly.Table;
  roam_set_threw(threw: number, value: number): void;
  roam_stack_save(): number;
  roam_stack_restore(sp: number): void;
}

/**
 * Imports for every invoke_* and roam.throw_longjmp the module asks for. `rewindTable` is the
 * table an invoke calls through while the guest rewinds (the twins' table), else undefined.
 */
export function setjmpImports(
  module: WebAssembly.Module,
  exports: () => WebAssembly.Exports,
  rewindTable: () => WebAssembly.Table | undefined,
): WebAssembly.Imports {
  const env: WebAssembly.ModuleImports = {};
  const roam: WebAssembly.ModuleImports = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.kind !== 'function') continue;
    if (imp.module === 'env' && imp.name.startsWith('invoke_')) {
      env[imp.name] = (index: number, ...args: unknown[]) => {
        const guest = exports() as unknown as SetjmpExports;
        const sp = guest.roam_stack_save();
        try {
          const table = rewindTable() ?? guest.__indirect_function_table;
          return (table.get(index) as (...a: unknown[]) => unknown)(...args);
        } catch (error) {
          if (!(error instanceof LongjmpSignal)) throw error;
          // Frames skipped by the throw never popped their shadow-stack space.
          guest.roam_stack_restore(sp);
          guest.roam_set_threw(1, 0);
          return imp.name.startsWith('invoke_j') ? 0n : 0;
        }
      };
    } else if (imp.module === 'roam' && imp.name === 'throw_longjmp') {
      roam[imp.name] = () => {
        throw new LongjmpSignal();
      };
    }
  }
  return { env, roam };
}

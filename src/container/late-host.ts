import type { GuestHost } from '../engine/instance.js';
import type { WasiHost } from '../wasi/host.js';

/**
 * A host whose WASI imports are bound later: an incoming migration builds the instance (and so
 * its memory, which receives pages while the source still runs) before the host state arrives.
 */
export class LateHost implements GuestHost {
  private target: WasiHost | undefined;
  private targetImports: Record<string, WebAssembly.ModuleImports> = {};
  private memory: WebAssembly.Memory | undefined;

  /** @param importNames the module's function imports from the host's modules. */
  constructor(private readonly importNames: { module: string; name: string }[]) {}

  imports(): Record<string, WebAssembly.ModuleImports> {
    const modules: Record<string, WebAssembly.ModuleImports> = {};
    for (const { module, name } of this.importNames) {
      modules[module] ??= {};
      modules[module][name] = (...args: unknown[]) =>
        (this.targetImports[module]![name] as (...a: unknown[]) => unknown)(...args);
    }
    return modules;
  }

  bindMemory(memory: WebAssembly.Memory): void {
    this.memory = memory;
  }

  bind(host: WasiHost): void {
    this.target = host;
    this.targetImports = host.imports();
    host.bindMemory(this.memory!);
  }

  timerDue(): boolean {
    return this.target?.timerDue() ?? false;
  }

  usesEventLoop(): boolean {
    return this.target?.usesEventLoop() ?? false;
  }

  capture(): unknown {
    if (!this.target) throw new Error('the host was never bound');
    return this.target.capture();
  }
}

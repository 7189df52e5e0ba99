import type { GuestHost } from '../engine/instance.js';
import type { WasiHost } from '../wasi/host.js';

/**
 * A host whose WASI imports are bound later: an incoming migration builds the instance (and so
 * its memory, which receives pages while the source still runs) before the host state arrives.
 */
export class LateHost implements GuestHost {
  private target: WasiHost | undefined;
  private targetImports: WebAssembly.ModuleImports = {};
  private memory: WebAssembly.Memory | undefined;

  constructor(private readonly importNames: string[]) {}

  imports(): WebAssembly.ModuleImports {
    const imports: WebAssembly.ModuleImports = {};
    for (const name of this.importNames) {
      imports[name] = (...args: unknown[]) => (this.targetImports[name] as (...a: unknown[]) => unknown)(...args);
    }
    return imports;
  }

  bindMemory(memory: WebAssembly.Memory): void {
    this.memory = memory;
  }

  bind(host: WasiHost): void {
    this.target = host;
    this.targetImports = host.imports();
    host.bindMemory(this.memory!);
  }

  capture(): unknown {
    if (!this.target) throw new Error('the host was never bound');
    return this.target.capture();
  }
}

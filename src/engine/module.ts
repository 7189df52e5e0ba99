import { readFile } from 'node:fs/promises';
import { type ModuleManifest, manifestSection, readManifest, sha256 } from '../build/manifest.js';
import { hasCustomSection, withSharedMemory } from '../build/module-binary.js';

/** A compiled module with what Roam knows about it. */
export interface LoadedModule {
  module: WebAssembly.Module;
  /** The module as given (its digest identifies it); a migratable one runs with its memory shared. */
  bytes: Uint8Array;
  /** Present when the module was instrumented by `roam build` (it can then be suspended and captured). */
  manifest: ModuleManifest | undefined;
  digest: string;
}

export class ModuleLoadError extends Error {}

export async function loadModule(path: string): Promise<LoadedModule> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ModuleLoadError(code === 'ENOENT' ? `${path}: no such file` : `${path}: ${(error as Error).message}`);
  }
  return compileModule(new Uint8Array(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.length), path);
}

export async function compileModule(bytes: Uint8Array<ArrayBuffer>, label = 'module'): Promise<LoadedModule> {
  let module: WebAssembly.Module;
  try {
    // Shared, so that pre-copy can read a migratable guest's memory from another thread while it runs.
    module = await WebAssembly.compile(hasCustomSection(bytes, manifestSection) ? withSharedMemory(bytes) : bytes);
  } catch (error) {
    throw new ModuleLoadError(`${label}: not a valid WebAssembly module (${(error as Error).message})`);
  }
  let manifest: ModuleManifest | undefined;
  try {
    manifest = readManifest(module);
  } catch (error) {
    throw new ModuleLoadError(`${label}: ${(error as Error).message}`);
  }
  return { module, bytes, manifest, digest: sha256(bytes) };
}

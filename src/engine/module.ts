import { readFile } from 'node:fs/promises';
import { type ModuleManifest, manifestSection, readManifest, sha256 } from '../build/manifest.js';
import { hasCustomSection, withSharedMemory } from '../build/module-binary.js';
import { hasCode, RoamError } from '../platform/errors.js';

/** A compiled module with what Roam knows about it. */
export interface LoadedModule {
  module: WebAssembly.Module;
  /** The module as given (its digest identifies it); a migratable one runs with its memory shared. */
  bytes: Uint8Array;
  /** Present when the module was instrumented by `roam build` (it can then be suspended and captured). */
  manifest: ModuleManifest | undefined;
  digest: string;
}

/** Why a module cannot be loaded; the code tells the failures apart. */
export type ModuleLoadCode =
  | 'ROAM_MODULE_NOT_FOUND'
  | 'ROAM_MODULE_UNREADABLE'
  | 'ROAM_MODULE_INVALID'
  | 'ROAM_MODULE_STALE';

/** A module that cannot be read, compiled or run as a WASI command. */
export class ModuleLoadError extends RoamError {
  constructor(
    readonly code: ModuleLoadCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export async function loadModule(path: string): Promise<LoadedModule> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw code === 'ENOENT'
      ? new ModuleLoadError('ROAM_MODULE_NOT_FOUND', `${path}: no such file`, { cause: error })
      : new ModuleLoadError('ROAM_MODULE_UNREADABLE', `${path}: ${(error as Error).message}`, { cause: error });
  }
  return compileModule(new Uint8Array(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.length), path);
}

export async function compileModule(bytes: Uint8Array<ArrayBuffer>, label = 'module'): Promise<LoadedModule> {
  let module: WebAssembly.Module;
  try {
    // Shared, so that pre-copy can read a migratable guest's memory from another thread while it runs.
    module = await WebAssembly.compile(hasCustomSection(bytes, manifestSection) ? withSharedMemory(bytes) : bytes);
  } catch (error) {
    throw new ModuleLoadError(
      'ROAM_MODULE_INVALID',
      `${label}: not a valid WebAssembly module (${(error as Error).message})`,
      { cause: error },
    );
  }
  let manifest: ModuleManifest | undefined;
  try {
    manifest = readManifest(module);
  } catch (error) {
    // A manifest from another roam build version, or one that is not JSON.
    const code = hasCode(error, 'ROAM_MODULE_STALE') ? 'ROAM_MODULE_STALE' : 'ROAM_MODULE_INVALID';
    throw new ModuleLoadError(code, `${label}: ${(error as Error).message}`, { cause: error });
  }
  return { module, bytes, manifest, digest: sha256(bytes) };
}

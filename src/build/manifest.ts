import { createHash } from 'node:crypto';
import { RoamError } from '../platform/errors.js';
import type { ResumeExports } from './resume-clones.js';

/**
 * Bumped whenever instrumentation changes what the engine must know to run or restore a module.
 * 2: migration points at loop headers and recursive functions' entries only; Asyncify instruments
 * exactly the functions that can be on the stack at an unwind (an image's unwound stack only
 * rewinds into the same module, but a module's digest no longer says which build made it).
 * 3: the running code unwinds but cannot rewind; rewinds enter twins (`resume`, resume-clones.ts).
 */
export const instrumentationVersion = 3;

/** The custom section in which `roam build` leaves its manifest inside the module. */
export const manifestSection = 'roam.manifest';

export interface BuildOptions {
  /** Bytes of the shadow-stack region set aside for the unwound stack (see instrument.ts). */
  asyncifyBufferBytes: number;
  /** Migration points run between two polls of the host (bounds the stop latency). */
  pollInterval: number;
  /** Binaryen optimization level applied after instrumentation. */
  optimizeLevel: number;
}

export const defaultBuildOptions: BuildOptions = {
  asyncifyBufferBytes: 1024 * 1024,
  pollInterval: 4096,
  optimizeLevel: 3,
};

/** What the engine needs to drive an instrumented module; stored in the module itself. */
export interface ModuleManifest {
  roam: 'migratable-module';
  instrumentationVersion: number;
  options: BuildOptions;
  /** sha256 of the module before instrumentation. */
  sourceDigest: string;
  /** Address and size of the reserved Asyncify buffer in linear memory. */
  asyncifyBuffer: { address: number; bytes: number };
  /** Export name of the shadow stack pointer global (unwinds must stay below it). */
  stackPointer: string;
  /** Export name of every mutable global, in global index order. */
  globalExports: string[];
  /** Imports that may suspend the guest (unwind and later rewind). */
  suspendingImports: string[];
  /**
   * Where a rewind enters (resume-clones.ts): the running code cannot rewind. Absent where the
   * module's code could not be split (then it rewinds through its own entries).
   */
  resume?: ResumeExports;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The module was instrumented by another version of `roam build`: rebuild it. */
export class StaleModuleError extends RoamError {
  readonly code = 'ROAM_MODULE_STALE';
}

/** Reads the manifest `roam build` embedded, or undefined for a plain module. */
export function readManifest(module: WebAssembly.Module): ModuleManifest | undefined {
  const sections = WebAssembly.Module.customSections(module, manifestSection);
  if (sections.length === 0) return undefined;
  const manifest = JSON.parse(Buffer.from(sections[0]!).toString('utf8')) as ModuleManifest;
  if (manifest.instrumentationVersion !== instrumentationVersion) {
    throw new StaleModuleError(
      `module was instrumented by roam build v${manifest.instrumentationVersion}, this roam runs v${instrumentationVersion}: rebuild it`,
    );
  }
  return manifest;
}

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RoamError } from '../platform/errors.js';
import { runCc } from './cc.js';
import { instrument } from './instrument.js';
import { type BuildOptions, type ModuleManifest, sha256 } from './manifest.js';
import { isWasmFile } from './module-binary.js';

/** `roam build` was given inputs it cannot build from, or compiling them failed. */
export class BuildError extends RoamError {
  readonly code = 'ROAM_BUILD';
}

export interface BuildResult {
  output: string;
  digest: string;
  bytes: number;
  manifest: ModuleManifest;
}

/**
 * `roam build`: instruments a .wasm, or first compiles C sources (with any extra compiler
 * flags) through `roam cc`. Writes OUT and OUT.manifest.json (the manifest plus the digest).
 */
export function build(inputs: string[], compilerArgs: string[], output: string, options: BuildOptions): BuildResult {
  const wasmInputs = inputs.filter((input) => input.endsWith('.wasm') || isWasmFile(input));
  let plain: Uint8Array;
  if (wasmInputs.length > 0) {
    if (inputs.length !== 1 || compilerArgs.length > 0)
      throw new BuildError('roam build takes one WebAssembly module, or C sources and compiler flags');
    try {
      plain = readFileSync(wasmInputs[0]!);
    } catch (error) {
      throw new BuildError(
        `${wasmInputs[0]}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`,
        { cause: error },
      );
    }
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'roam-build-'));
    try {
      const linked = join(dir, 'plain.wasm');
      const status = runCc([...compilerArgs, ...inputs, '-o', linked]);
      if (status !== 0) throw new BuildError(`compilation failed (roam cc exited with ${status})`);
      plain = readFileSync(linked);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const { wasm, manifest } = instrument(plain, options);
  writeFileSync(output, wasm);
  const digest = sha256(wasm);
  writeFileSync(`${output}.manifest.json`, `${JSON.stringify({ digest, ...manifest }, null, 2)}\n`);
  return { output, digest, bytes: wasm.length, manifest };
}

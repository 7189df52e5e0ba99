import type { Command } from 'commander';
import { defaultBuildOptions } from '../build/manifest.js';
import { isWasmFile } from '../build/module-binary.js';
import { parsePositiveInt, UserError } from './options.js';

export function registerBuild(program: Command): void {
  program
    .command('build')
    .description('Make a migratable module from a .wasm, or from C sources (extra arguments go to roam cc)')
    .argument('<inputs...>', 'one .wasm module, or C sources/objects/libraries and compiler flags')
    .requiredOption('-o, --output <file>', 'migratable module to write')
    .option(
      '--asyncify-buffer <bytes>',
      'bytes reserved for the unwound stack',
      parsePositiveInt,
      defaultBuildOptions.asyncifyBufferBytes,
    )
    .option(
      '--poll-interval <points>',
      'migration points between two host polls',
      parsePositiveInt,
      defaultBuildOptions.pollInterval,
    )
    .option(
      '--optimize-level <n>',
      'Binaryen optimization level after instrumentation (0-4)',
      Number,
      defaultBuildOptions.optimizeLevel,
    )
    .allowUnknownOption()
    .action(
      async (
        inputs: string[],
        opts: { output: string; asyncifyBuffer: number; pollInterval: number; optimizeLevel: number },
      ) => {
        // Unknown options and their values are compiler flags (-O2, -I dir, -DX...).
        // A module may have any name (make calls programs `bzip2`, not `bzip2.wasm`).
        const sources = inputs.filter(
          (arg) => !arg.startsWith('-') && (/\.(c|cc|cpp|cxx|o|a|wasm)$/.test(arg) || isWasmFile(arg)),
        );
        const compilerArgs = inputs.filter((arg) => !sources.includes(arg));
        if (sources.length === 0) throw new UserError('roam build: no input module or source files');
        // Binaryen is large (seconds to load under qemu): only the build command pays for it.
        const { build } = await import('../build/build.js');
        const result = build(sources, compilerArgs, opts.output, {
          asyncifyBufferBytes: opts.asyncifyBuffer,
          pollInterval: opts.pollInterval,
          optimizeLevel: opts.optimizeLevel,
        });
        process.stderr.write(
          `roam build: ${result.output} (${result.bytes} bytes, sha256 ${result.digest.slice(0, 16)}…)\n`,
        );
      },
    );
}

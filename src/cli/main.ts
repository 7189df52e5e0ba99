#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { runCc } from '../build/cc.js';
import { registerBuild } from './build-command.js';
import { registerCheckpoint } from './checkpoint-command.js';
import { registerRestore } from './restore-command.js';
import { registerRun } from './run-command.js';

/** Runs the CLI; commands report their status through process.exitCode. */
async function main(argv: string[]): Promise<void> {
  // `roam cc` forwards a compiler command line verbatim: no option parsing of our own.
  if (argv[2] === 'cc') {
    process.exitCode = runCc(argv.slice(3));
    return;
  }

  const program = new Command('roam')
    .description('Live-migrate running WebAssembly programs between CPU architectures')
    .version('0.1.0')
    .exitOverride();
  program.command('cc').description('C compiler driver for wasm32-wasi (gcc-compatible arguments)');
  registerBuild(program);
  registerRun(program);
  registerCheckpoint(program);
  registerRestore(program);
  await program.parseAsync(argv);
}

main(process.argv).catch((error: unknown) => {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;
    return;
  }
  // Our own error classes carry a complete one-line message; anything else is a bug: show the stack.
  const known = error instanceof Error && error.constructor !== Error && !(error instanceof TypeError) && !(error instanceof RangeError);
  process.stderr.write(`roam: ${known ? (error as Error).message : String((error as Error)?.stack ?? error)}\n`);
  process.exitCode = 1;
});

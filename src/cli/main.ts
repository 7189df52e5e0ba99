#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { describeError } from '../platform/errors.js';

/** Runs the CLI; commands report their status through process.exitCode. */
async function main(argv: string[]): Promise<void> {
  // `roam cc` forwards a compiler command line verbatim, and runs once per file in a configure
  // or make build: load nothing else.
  if (argv[2] === 'cc') {
    const { runCc } = await import('../build/cc.js');
    process.exitCode = runCc(argv.slice(3));
    return;
  }
  const program = new Command('roam')
    .description('Live-migrate running WebAssembly programs between CPU architectures')
    .version('0.1.0')
    .exitOverride();
  program.command('cc').description('C compiler driver for wasm32-wasi (gcc-compatible arguments)');
  for (const register of await Promise.all([
    import('./build-command.js').then((m) => m.registerBuild),
    import('./run-command.js').then((m) => m.registerRun),
    import('./checkpoint-command.js').then((m) => m.registerCheckpoint),
    import('./restore-command.js').then((m) => m.registerRestore),
    import('./agent-command.js').then((m) => m.registerAgent),
    import('./gateway-command.js').then((m) => m.registerGateway),
    import('./cluster-commands.js').then((m) => m.registerClusterCommands),
    import('./migrate-command.js').then((m) => m.registerMigrate),
    import('./demo-command.js').then((m) => m.registerDemo),
  ])) {
    register(program);
  }
  await program.parseAsync(argv);
}

main(process.argv).catch((error: unknown) => {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;
    return;
  }
  // A RoamError is one line for the user (ROAM_DEBUG=1: code, stack, causes); anything else is a bug: its stack.
  process.stderr.write(`roam: ${describeError(error)}\n`);
  process.exitCode = 1;
});

#!/usr/bin/env node
import { describeError } from '../platform/errors.js';

/** Runs the CLI; commands report their status through process.exitCode. */
async function main(argv: string[]): Promise<void> {
  // `roam cc` and `roam c++` forward a compiler command line verbatim, and run once per file in a
  // configure or make build: load nothing else.
  if (argv[2] === 'cc' || argv[2] === 'c++') {
    const { runCc } = await import('../build/cc.js');
    process.exitCode = runCc(argv.slice(3), argv[2] === 'c++' ? 'c++' : 'c');
    return;
  }
  const { Command } = await import('commander');
  const program = new Command('roam')
    .description('Live-migrate running WebAssembly programs between CPU architectures')
    .version('0.1.0')
    .exitOverride();
  program.command('cc').description('C compiler driver for wasm32-wasi (gcc-compatible arguments)');
  program.command('c++').description('C++ compiler driver for wasm32-wasi (g++-compatible arguments)');
  for (const register of await Promise.all([
    import('./build-command.js').then((m) => m.registerBuild),
    import('./run-command.js').then((m) => m.registerRun),
    import('./checkpoint-command.js').then((m) => m.registerCheckpoint),
    import('./restore-command.js').then((m) => m.registerRestore),
    import('./agent-command.js').then((m) => m.registerAgent),
    import('./gateway-command.js').then((m) => m.registerGateway),
    import('./cluster-commands.js').then((m) => m.registerClusterCommands),
    import('./migrate-command.js').then((m) => m.registerMigrate),
    import('./recover-command.js').then((m) => m.registerRecover),
    import('./demo-command.js').then((m) => m.registerDemo),
  ])) {
    register(program);
  }
  await program.parseAsync(argv);
}

main(process.argv).catch(async (error: unknown) => {
  if (error instanceof (await import('commander')).CommanderError) {
    process.exitCode = error.exitCode;
    return;
  }
  // A RoamError is one line for the user (ROAM_DEBUG=1: code, stack, causes); anything else is a bug: its stack.
  process.stderr.write(`roam: ${describeError(error)}\n`);
  process.exitCode = 1;
});

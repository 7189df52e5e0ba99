/**
 * `roam-exec [--argv0 NAME] MODULE [ARGS...]` (bin/roam-exec; bin/roam-binfmt is the kernel's
 * binfmt_misc interpreter for `\0asm` files): runs a wasm32-wasi command the way the kernel runs
 * a native program, so a build can run a helper it has just compiled with `roam cc` (bc's `fbc`,
 * discount's `mktags`) and configure can run its test programs.
 *
 * Unlike `roam run` (a container: its own /tmp, only the directories it is given), the guest
 * sees the host's file system as the caller does: `/` preopened, starting in the caller's working
 * directory (ROAM_CWD, which roam cc's _start enters: runtime/src/crt1-command.c), the caller's
 * environment, stdio and exit status. It runs on the engine directly with the synchronous
 * blocker, on the main thread: bin/roam-exec gives it a native stack as large as a container's
 * guest thread has (256 MiB), which a Worker would cost 50-100 ms more to start. A plain module
 * runs as fast as it can; a migratable one runs too, but nothing here stops or moves it.
 *
 * Exit status: the guest's; 127 when the module does not exist, 126 when it cannot be run,
 * 134 when the guest traps (abort() traps in WebAssembly; natively it is SIGABRT, 128 + 6).
 */
import { GuestTrap, Instance } from '../engine/instance.js';
import { loadModule, ModuleLoadError } from '../engine/module.js';
import { describeError } from '../platform/errors.js';
import { WasiExit, WasiHost } from '../wasi/host.js';

const usage = 'usage: roam-exec [--argv0 NAME] MODULE [ARGS...]';

/** Runs `roam-exec ARGS` (without node and the script); returns the exit status. */
export async function exec(argv: string[]): Promise<number> {
  const named = argv[0] === '--argv0';
  const [argv0, module] = named ? [argv[1], argv[2]] : [argv[0], argv[0]];
  if (!module || !argv0) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  try {
    const loaded = await loadModule(module);
    const instance = new Instance(
      loaded,
      (blocker) =>
        new WasiHost({
          args: [argv0, ...argv.slice(named ? 3 : 1)],
          env: { ...(process.env as Record<string, string>), ROAM_CWD: process.cwd() },
          preopens: [{ guestPath: '/', hostPath: '/' }],
          blocker,
        }),
      (error) => (error instanceof WasiExit ? error.code : undefined),
    );
    const outcome = await instance.run();
    return outcome.kind === 'exited' ? outcome.exitCode : 1;
  } catch (error) {
    process.stderr.write(`roam-exec: ${describeError(error)}\n`);
    if (error instanceof ModuleLoadError) return error.code === 'ROAM_MODULE_NOT_FOUND' ? 127 : 126;
    if (error instanceof GuestTrap) return 134;
    throw error;
  }
}

process.exitCode = await exec(process.argv.slice(2));

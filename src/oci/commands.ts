import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { Command } from 'commander';
import { readBundle } from './bundle.js';
import { BundleError, RuntimeStateError, RuntimeUsageError } from './errors.js';
import { features } from './features.js';
import { move, requireStatus } from './lifecycle.js';
import { parseGuestReply, requestStart } from './start-channel.js';
import { defaultRoot, isAlive, ociVersion, processStartTime, StateStore, specState } from './state-store.js';

export const runtimeVersion = '0.1.0';

/** The guest process `create` starts (guest-process.ts, next to this file in dist/). */
const guestEntry = new URL('./guest-process.js', import.meta.url).pathname;

interface GlobalOptions {
  root: string;
}

/**
 * The runtime's command line, as runc's (the subset engines call): global flags first, then the
 * subcommand. --log and --log-format are read by RuntimeLog; --systemd-cgroup and --debug are
 * accepted for the engines' sake and mean nothing to a WebAssembly guest.
 */
export function runtimeProgram(): Command {
  const program = new Command('roam-runtime')
    .description('OCI runtime (runc-compatible) running WebAssembly containers under Roam')
    .version(`roam-runtime version ${runtimeVersion}\nspec: ${ociVersion}`, '-v, --version')
    .option('--root <dir>', 'where container state lives', defaultRoot)
    .option('--log <file>', 'append errors to this file (as well as stderr)')
    .option('--log-format <format>', 'text or json', 'text')
    .option('--systemd-cgroup', 'accepted and ignored (no cgroups for a WebAssembly guest)')
    .option('--debug', 'accepted and ignored')
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
  const store = () => new StateStore(resolve(program.opts<GlobalOptions>().root));

  program
    .command('create')
    .description('create a container from a bundle; its guest waits for start')
    .argument('<id>')
    .option('-b, --bundle <dir>', 'the bundle (config.json and the root file system)', '.')
    .option('--pid-file <file>', "write the guest process's pid here")
    .option('--console-socket <path>', 'refused: a terminal is not supported')
    .option('--no-pivot', 'accepted and ignored')
    .option('--no-new-keyring', 'accepted and ignored')
    .option('--preserve-fds <n>', 'accepted and ignored')
    .action(async (id: string, opts: { bundle: string; pidFile?: string; consoleSocket?: string }) => {
      if (opts.consoleSocket !== undefined)
        throw new RuntimeUsageError('--console-socket: a terminal is not supported; run without -t');
      await create(store(), id, resolve(opts.bundle), opts.pidFile);
    });

  program
    .command('start')
    .description('run the guest of a created container')
    .argument('<id>')
    .action(async (id: string) => {
      const states = store();
      const state = states.load(id);
      requireStatus(id, state.status, 'start');
      await requestStart(id, `${states.directory(id)}/start.sock`);
      states.save({ ...state, status: move(id, state.status, 'running') });
    });

  program
    .command('state')
    .description('print the state of a container (runtime-spec JSON)')
    .argument('<id>')
    .action((id: string) => {
      process.stdout.write(`${JSON.stringify(specState(store().load(id)), null, 2)}\n`);
    });

  program
    .command('kill')
    .description("send a signal to the container's guest process (default SIGTERM)")
    .argument('<id>')
    .argument('[signal]', 'name (TERM, SIGTERM) or number', 'SIGTERM')
    .option('-a, --all', 'accepted: the guest is one process')
    .action((id: string, signal: string) => {
      const state = store().load(id);
      requireStatus(id, state.status, 'kill');
      process.kill(state.pid, signalNumber(signal));
    });

  program
    .command('delete')
    .description('delete a stopped container (--force: kill it first)')
    .argument('<id>')
    .option('-f, --force', 'kill a live container, and succeed for one that does not exist')
    .action(async (id: string, opts: { force?: boolean }) => {
      const states = store();
      let state: ReturnType<StateStore['load']>;
      try {
        state = states.load(id);
      } catch (error) {
        // Engines delete --force after a failed create: a container never made is deleted already.
        if (opts.force && error instanceof RuntimeStateError) {
          states.remove(id);
          return;
        }
        throw error;
      }
      if (state.status !== 'stopped') {
        if (!opts.force) requireStatus(id, state.status, 'delete');
        process.kill(state.pid, 'SIGKILL');
        await waitForExit(state.pid, state.pidStartTime);
      }
      states.remove(id);
    });

  program
    .command('features')
    .description('print what this runtime implements (runtime-spec features JSON)')
    .action(() => {
      process.stdout.write(`${JSON.stringify(features, null, 2)}\n`);
    });

  return program;
}

/**
 * Starts the guest process in a session of its own (it outlives this command: the engine's
 * monitor, a subreaper, inherits it and reaps its exit status), waits until it listens for
 * start, then records it. Anything that fails leaves nothing behind: no process, no state.
 */
async function create(states: StateStore, id: string, bundle: string, pidFile: string | undefined): Promise<void> {
  readBundle(bundle); // refuse a bad bundle here, where the engine reads the log
  const dir = states.reserve(id);
  const child = spawn(process.execPath, [guestEntry, dir, bundle], {
    detached: true,
    cwd: dir,
    stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
  });
  try {
    await guestReady(child.stdio[3] as Readable, id);
    const pid = child.pid!;
    const pidStartTime = processStartTime(pid);
    if (pidStartTime === undefined) throw new RuntimeStateError(`container ${id}: its guest process ended at once`);
    states.save({ id, bundle, status: 'created', pid, pidStartTime, created: new Date().toISOString() });
    if (pidFile !== undefined) writeFileSync(pidFile, String(pid));
    (child.stdio[3] as Readable).destroy();
    child.unref();
  } catch (error) {
    if (child.exitCode === null) child.kill('SIGKILL');
    states.remove(id);
    throw error;
  }
}

/**
 * Resolves when the guest process says on fd 3 that it waits for start; rejects with its reason
 * when it cannot run the bundle, or if it ended without a word.
 */
function guestReady(pipe: Readable, id: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    let text = '';
    pipe.setEncoding('utf8');
    pipe.on('data', (chunk: string) => {
      text += chunk;
      const newline = text.indexOf('\n');
      if (newline < 0) return;
      const reply = parseGuestReply(text.slice(0, newline));
      if (reply?.ok) resolvePromise();
      else reject(new BundleError(reply ? reply.error : `container ${id}: its guest process answered nonsense`));
    });
    pipe.on('close', () =>
      reject(new RuntimeStateError(`container ${id}: its guest process ended before it was ready`)),
    );
  });
}

/** A signal as runc takes it: `KILL`, `SIGKILL` or `9`. */
export function signalNumber(signal: string): number {
  const signals = osConstants.signals as Record<string, number>;
  const number = /^\d+$/.test(signal)
    ? Number(signal)
    : signals[signal.toUpperCase().startsWith('SIG') ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`];
  if (number === undefined || !Object.values(signals).includes(number))
    throw new RuntimeUsageError(`unknown signal "${signal}"`);
  return number;
}

/** Waits (up to 10 s) for a killed guest process to end. */
async function waitForExit(pid: number, startTime: string): Promise<void> {
  for (let waited = 0; isAlive(pid, startTime); waited += 20) {
    if (waited > 10_000) throw new RuntimeStateError(`process ${pid} did not end after SIGKILL`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

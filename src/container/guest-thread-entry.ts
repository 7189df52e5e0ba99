/**
 * A container's guest thread (see container.ts): runs one instance and obeys its owner, which
 * reads the guest's shared memory directly while it runs (pre-copy) and drives stop / capture /
 * resume / restore through messages.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Blocker } from '../engine/blocking.js';
import { Instance } from '../engine/instance.js';
import { compileModule } from '../engine/module.js';
import { isRoamError } from '../platform/errors.js';
import { HOST_MODULES } from '../wasi/constants.js';
import { WasiExit, WasiHost } from '../wasi/host.js';
import {
  ContainerError,
  type ContainerState,
  type GuestCommand,
  type GuestEvent,
  type GuestThreadInit,
  wallClock,
} from './container.js';
import { LateHost } from './late-host.js';
import { OwnerChannel } from './owner-channel.js';
import { SharedLoopback } from './shared-loopback.js';

const init = workerData as GuestThreadInit;
const post = (event: GuestEvent) => parentPort!.postMessage(event);
const commands: GuestCommand[] = [];
let wake: (() => void) | undefined;
/** The network this process shares with the others of its container, if it has others. */
const sharedLoopback = init.process
  ? new SharedLoopback(new OwnerChannel(init.process.link), init.process.index)
  : undefined;
parentPort!.on('message', (command: GuestCommand) => {
  // A connection is taken at once, in order with the commands (a capture after it sees it queued).
  if (command.op === 'deliver') {
    sharedLoopback?.deliver(command.delivery);
    return;
  }
  commands.push(command);
  wake?.();
});

const isWasiExit = (error: unknown) => (error instanceof WasiExit ? error.code : undefined);

async function nextCommand(): Promise<GuestCommand> {
  while (commands.length === 0) {
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  }
  wake = undefined;
  return commands.shift()!;
}

/** A fresh guest from its arguments; a plain (not instrumented) module runs too, but cannot stop. */
async function start(
  init: Extract<GuestThreadInit, { kind: 'start' }>,
): Promise<{ instance: Instance; host: WasiHost }> {
  const loaded = await compileModule(init.module, init.label);
  if (init.migratableOnly && !loaded.manifest) {
    throw new ContainerError(`${init.label} is a plain module: build it with roam build to make it migratable`);
  }
  let host!: WasiHost;
  const instance = new Instance(
    loaded,
    (blocker) => {
      host = new WasiHost({
        args: init.args,
        env: init.env,
        preopens: init.preopens,
        network: init.network,
        blocker,
        loopback: sharedLoopback,
        ...init.process?.stdio,
        stdioPairs: init.process?.pipes,
      });
      return host;
    },
    isWasiExit,
    init.stopFlag,
  );
  // Only a migratable guest's memory is shared, and so can be handed to the owner.
  post({ event: 'ready', ...(instance.migratable ? { memory: instance.linearMemory } : {}) });
  return { instance, host };
}

/**
 * An incoming guest: the instance (and so its memory, which the owner fills) exists before its
 * state; the WASI imports are bound once the state arrives, and the guest runs at once.
 */
async function receive(
  init: Extract<GuestThreadInit, { kind: 'incoming' }>,
): Promise<{ instance: Instance; host: WasiHost; preopens: ContainerState['preopens'] }> {
  const loaded = await compileModule(init.module, init.label);
  if (!loaded.manifest)
    throw new ContainerError(`${init.label} is a plain module: build it with roam build to restore it`);
  const names = WebAssembly.Module.imports(loaded.module)
    .filter((i) => HOST_MODULES.includes(i.module) && i.kind === 'function')
    .map(({ module, name }) => ({ module, name }));
  const late = new LateHost(names);
  let blocker!: Blocker;
  const instance = new Instance(
    loaded,
    (given) => {
      blocker = given;
      return late;
    },
    isWasiExit,
    init.stopFlag,
  );
  instance.resetMemory(init.memoryBytes);
  post({ event: 'ready', memory: instance.linearMemory });
  const command = await nextCommand();
  if (command.op !== 'restore') throw new Error(`unexpected ${command.op} before restore`);
  const state = command.state;
  const network = state.host.network && init.gateway ? { ...state.host.network, gateway: init.gateway } : undefined;
  let host: WasiHost;
  try {
    host = WasiHost.restore(state.host, {
      preopens: state.preopens,
      blocker,
      network,
      loopback: sharedLoopback,
      ...init.process?.stdio,
    });
  } catch (error) {
    throw new ContainerError(`cannot restore the guest's files: ${(error as Error).message}`, { cause: error });
  }
  late.bind(host);
  instance.restoreState(state);
  post({ event: 'loaded' });
  const go = await nextCommand();
  if (go.op !== 'resume') throw new Error(`unexpected ${go.op} before resume`);
  // Committed: clients wait in the gateway until this guest attaches, so attach now.
  host.resumeNetwork();
  post({ event: 'restored', resumedAt: wallClock() });
  return { instance, host, preopens: state.preopens };
}

async function main(): Promise<void> {
  const { instance, host, preopens } =
    init.kind === 'start' ? { ...(await start(init)), preopens: init.preopens } : await receive(init);
  for (;;) {
    const outcome = await instance.run();
    if (outcome.kind === 'exited') {
      post({ event: 'exited', exitCode: outcome.exitCode });
      return;
    }
    post({ event: 'stopped', at: wallClock() });
    for (;;) {
      const command = await nextCommand();
      if (command.op === 'capture') {
        const snapshot = instance.capture();
        const state: ContainerState = {
          preopens,
          engine: snapshot.engine,
          globals: snapshot.globals,
          host: snapshot.host as ContainerState['host'],
        };
        post({ event: 'captured', state });
      } else if (command.op === 'resume') {
        host.resumeNetwork();
        break;
      } else {
        throw new Error(`unexpected ${command.op} while stopped`);
      }
    }
  }
}

main().then(
  () => parentPort!.close(),
  (error: unknown) => {
    const failure = isRoamError(error)
      ? { message: error.message, code: error.code }
      : { message: error instanceof Error ? error.message : String(error), stack: (error as Error)?.stack };
    post({ event: 'failed', failure });
    parentPort!.close();
  },
);

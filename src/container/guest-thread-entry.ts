/**
 * A container's guest thread (see guest-thread.ts): runs one instance and obeys its owner, which
 * reads the guest's shared memory directly while it runs (pre-copy) and drives stop / capture /
 * resume / restore through messages.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Instance } from '../engine/instance.js';
import { loadModule } from '../engine/module.js';
import { WasiHost } from '../wasi/host.js';
import { type ContainerState, isWasiExit } from './container.js';
import { type GuestCommand, type GuestEvent, type GuestThreadInit, wallClock } from './guest-thread.js';
import { LateHost } from './late-host.js';

const init = workerData as GuestThreadInit;
const post = (event: GuestEvent) => parentPort!.postMessage(event);
const commands: GuestCommand[] = [];
let wake: (() => void) | undefined;
parentPort!.on('message', (command: GuestCommand) => {
  commands.push(command);
  wake?.();
});

async function nextCommand(): Promise<GuestCommand> {
  while (commands.length === 0) await new Promise<void>((resolve) => (wake = resolve));
  wake = undefined;
  return commands.shift()!;
}

async function main(): Promise<void> {
  const loaded = await loadModule(init.modulePath);
  if (!loaded.manifest)
    throw new Error(`${init.modulePath} is a plain module: build it with roam build to run it on a node`);
  let instance: Instance;
  let host!: WasiHost;
  let late: LateHost | undefined;
  let preopens = init.kind === 'start' ? init.preopens : [];
  if (init.kind === 'start') {
    instance = new Instance(
      loaded,
      (blocker) =>
        (host = new WasiHost({
          args: init.args,
          env: init.env,
          preopens: init.preopens,
          network: init.network,
          blocker,
        })),
      isWasiExit,
      init.stopFlag,
    );
  } else {
    const names = WebAssembly.Module.imports(loaded.module)
      .filter((i) => i.module === 'wasi_snapshot_preview1' && i.kind === 'function')
      .map((i) => i.name);
    let blocker!: Parameters<ConstructorParameters<typeof Instance>[1]>[0];
    late = new LateHost(names);
    instance = new Instance(loaded, (b) => ((blocker = b), late!), isWasiExit, init.stopFlag);
    instance.resetMemory(init.memoryBytes);
    post({ event: 'ready', memory: instance.linearMemory });
    const command = await nextCommand();
    if (command.op !== 'restore') throw new Error(`unexpected ${command.op} before restore`);
    const state = command.state;
    preopens = state.preopens;
    const network = state.host.network && init.gateway ? { ...state.host.network, gateway: init.gateway } : undefined;
    host = WasiHost.restore(state.host, { preopens: state.preopens, blocker, network });
    late.bind(host);
    instance.restoreState(state);
    const go = await nextCommand();
    if (go.op !== 'resume') throw new Error(`unexpected ${go.op} before resume`);
    // Committed: clients wait in the gateway until this guest attaches, so attach now.
    host.resumeNetwork();
    post({ event: 'restored', resumedAt: wallClock() });
  }
  if (init.kind === 'start') post({ event: 'ready', memory: instance.linearMemory });
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
    post({ event: 'failed', message: error instanceof Error ? error.message : String(error) });
    parentPort!.close();
  },
);

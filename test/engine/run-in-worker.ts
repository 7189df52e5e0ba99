/**
 * Worker side of the stop tests: runs a module with a shared stop flag, reports when the guest
 * stops (with the time, to measure stop latency) and resumes it on request.
 */
import { openSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { Instance } from '../../src/engine/instance.js';
import { loadModule } from '../../src/engine/module.js';
import { WasiExit, WasiHost } from '../../src/wasi/host.js';

const { modulePath, args, flag, stdoutPath } = workerData as {
  modulePath: string;
  args: string[];
  flag: Int32Array;
  stdoutPath: string;
};
const stdout = openSync(stdoutPath, 'w');
const loaded = await loadModule(modulePath);
const instance = new Instance(
  loaded,
  (blocker) => new WasiHost({ args: ['guest', ...args], env: {}, preopens: [], stdout, blocker }),
  (error) => (error instanceof WasiExit ? error.code : undefined),
  flag,
);
parentPort!.on('message', async (message: string) => {
  if (message !== 'run') return;
  const outcome = await instance.run();
  parentPort!.postMessage({ outcome, at: performance.timeOrigin + performance.now() });
});
parentPort!.postMessage({ ready: true });

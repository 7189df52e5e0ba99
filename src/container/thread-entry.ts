/** Entry of a container thread (see thread.ts): runs one job and reports how it ended. */
import { parentPort, workerData } from 'node:worker_threads';
import { type ContainerJob, runJob } from './jobs.js';

try {
  const exitCode = await runJob(workerData as ContainerJob);
  parentPort!.postMessage({ exitCode });
} catch (error) {
  // Same rule as the CLI: our own error classes carry a one-line message, anything else is a bug.
  const known =
    error instanceof Error &&
    error.constructor !== Error &&
    !(error instanceof TypeError) &&
    !(error instanceof RangeError);
  parentPort!.postMessage({
    error: known ? (error as Error).message : String((error as Error)?.stack ?? error),
    known,
  });
}

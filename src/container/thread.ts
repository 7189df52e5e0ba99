import { Worker } from 'node:worker_threads';
import type { ContainerJob } from './jobs.js';

/**
 * V8's default stack (about 1 MB) runs out long before a guest's own stack does (jq's tests
 * recurse 10000 deep), so guests run on a thread whose stack is this large.
 */
export const guestStackMiB = 256;

export class ContainerThreadError extends Error {}

/** Runs a container job on a thread with a large stack; resolves with the guest's exit status. */
export function runJobInThread(job: ContainerJob): Promise<number> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./thread-entry.js', import.meta.url), {
      workerData: job,
      resourceLimits: { stackSizeMb: guestStackMiB },
    });
    let settled = false;
    worker.on('message', (message: { exitCode?: number; error?: string; known?: boolean }) => {
      settled = true;
      if (message.error === undefined) resolve(message.exitCode!);
      else reject(message.known ? new ContainerThreadError(message.error) : new Error(message.error));
    });
    worker.on('error', (error) => {
      settled = true;
      reject(error);
    });
    worker.on('exit', (code) => {
      if (!settled) reject(new Error(`container thread exited with ${code} without a result`));
    });
  });
}

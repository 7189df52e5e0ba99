import type { Container } from './container.js';
import { ControlServer } from './control.js';

/**
 * Runs a container in this process until its guest exits (resolves with its status) or a
 * checkpoint without --leave-running stops it for good (0). A named container answers
 * checkpoint requests on its control socket meanwhile.
 */
export async function runHere(container: Container, name?: string): Promise<number> {
  let checkpointed: (() => void) | undefined;
  const stoppedForGood = new Promise<number>((resolve) => {
    checkpointed = () => resolve(0);
  });
  const control = name
    ? await ControlServer.listen(name, async (request) => {
        const reply = await container.checkpoint(request);
        if (reply.ok && !request.leaveRunning) {
          checkpointed?.(); // first: ending the thread makes `exited` reject
          await container.terminate();
        }
        return reply;
      })
    : undefined;
  try {
    return await Promise.race([container.exited, stoppedForGood]);
  } finally {
    control?.close();
  }
}

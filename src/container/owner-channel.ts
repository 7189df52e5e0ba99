import { type MessagePort, receiveMessageOnPort } from 'node:worker_threads';

/**
 * A synchronous call from a guest thread to its container's owner (the main thread): a WASI call
 * such as bind() or connect() must answer at once, while the answer (who else holds the port,
 * which process listens there) lives with the owner. The guest thread posts the request and
 * sleeps on a shared flag until the owner has posted the answer.
 */

/** What a guest thread is given to reach its owner: a port of its own and the flag it sleeps on. */
export interface OwnerLink {
  port: MessagePort;
  flag: Int32Array;
}

export class OwnerChannel {
  constructor(private readonly link: OwnerLink) {}

  call<Reply>(request: unknown): Reply {
    const { port, flag } = this.link;
    Atomics.store(flag, 0, 0);
    port.postMessage(request);
    Atomics.wait(flag, 0, 0);
    const reply = receiveMessageOnPort(port);
    if (!reply) throw new Error('the container owner answered without a message');
    return reply.message as Reply;
  }
}

/** The owner's end: answers each request of one guest thread with `answer`'s result. */
export function serveOwnerLink<Request>(
  port: MessagePort,
  flag: Int32Array,
  answer: (request: Request) => unknown,
): void {
  port.on('message', (request: Request) => {
    port.postMessage(answer(request));
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  });
}

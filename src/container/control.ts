import { existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type CheckpointRequest, ControlError, type ControlReply, controlSocketPath } from './control-protocol.js';

/** The main-thread side of a named container's control socket. */
export class ControlServer {
  private readonly queue: { id: number; request: CheckpointRequest }[] = [];
  private wake: (() => void) | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly socketPath: string,
  ) {
    worker.on('message', (message: { id?: number; request?: CheckpointRequest }) => {
      if (message.id === undefined) return;
      this.queue.push({ id: message.id, request: message.request! });
      this.wake?.();
    });
  }

  /** Listens as `name`; fails if a live container already has that name. */
  static async listen(name: string, stopFlag: Int32Array): Promise<ControlServer> {
    const socketPath = controlSocketPath(name);
    mkdirSync(dirname(socketPath), { recursive: true });
    if (existsSync(socketPath)) {
      if (await answers(socketPath)) throw new ControlError(`a container named "${name}" is already running`);
      unlinkSync(socketPath); // left behind by a container that died
    }
    const worker = new Worker(new URL('./control-worker.js', import.meta.url), {
      workerData: { socketPath, stopFlag },
    });
    const ready = await new Promise<{ listening?: boolean; error?: string }>((resolve) =>
      worker.once('message', resolve),
    );
    if (ready.error) {
      await worker.terminate();
      throw new ControlError(`cannot listen on ${socketPath}: ${ready.error}`);
    }
    worker.unref();
    return new ControlServer(worker, socketPath);
  }

  /** The next request (the guest is stopped because of it, or will be shortly). */
  async next(): Promise<{ id: number; request: CheckpointRequest }> {
    while (this.queue.length === 0) await new Promise<void>((resolve) => (this.wake = resolve));
    this.wake = undefined;
    return this.queue.shift()!;
  }

  hasPending(): boolean {
    return this.queue.length > 0;
  }

  reply(id: number, reply: ControlReply): void {
    this.worker.postMessage({ id, reply });
  }

  close(): void {
    this.worker.postMessage('close');
    try {
      unlinkSync(this.socketPath);
    } catch {
      // already gone
    }
  }
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Sends a request to the container named `name` and waits for its answer. */
export function sendControlRequest(
  name: string,
  request: CheckpointRequest,
  timeoutMs = 600_000,
): Promise<ControlReply> {
  const socketPath = controlSocketPath(name);
  if (!existsSync(socketPath)) return Promise.reject(new ControlError(`no running container named "${name}"`));
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ControlError(`container "${name}" did not answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(new ControlError(`no running container named "${name}" (${error.message})`));
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(answer) as ControlReply);
      } catch {
        reject(new ControlError(`container "${name}" closed the connection without an answer`));
      }
    });
  });
}

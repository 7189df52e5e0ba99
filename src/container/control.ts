import { existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { CheckpointReply, CheckpointRequest, ControlError, controlSocketPath, parseLine } from './control-protocol.js';

/**
 * The control socket of a named container: each connection sends one request and gets one reply.
 * Requests are handled one at a time, in the order they came.
 */
export class ControlServer {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly server: Server,
    private readonly socketPath: string,
  ) {}

  /** Listens as `name`; fails if a live container already has that name. */
  static async listen(
    name: string,
    handle: (request: CheckpointRequest) => Promise<CheckpointReply>,
  ): Promise<ControlServer> {
    const socketPath = controlSocketPath(name);
    mkdirSync(dirname(socketPath), { recursive: true });
    if (existsSync(socketPath)) {
      if (await answers(socketPath)) throw new ControlError(`a container named "${name}" is already running`);
      unlinkSync(socketPath); // left behind by a container that died
    }
    let control!: ControlServer;
    const server = createServer((socket) => control.accept(socket, handle));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, resolve);
      });
    } catch (error) {
      throw new ControlError(`cannot listen on ${socketPath}: ${(error as Error).message}`, { cause: error });
    }
    // The socket must not keep the process alive once the guest ended.
    server.unref();
    control = new ControlServer(server, socketPath);
    return control;
  }

  close(): void {
    this.server.close();
    try {
      unlinkSync(this.socketPath);
    } catch {
      // already gone
    }
  }

  private accept(socket: Socket, handle: (request: CheckpointRequest) => Promise<CheckpointReply>): void {
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      socket.pause();
      let request: CheckpointRequest;
      try {
        request = parseLine(CheckpointRequest, buffered.slice(0, newline), 'control request');
      } catch (error) {
        socket.end(`${JSON.stringify({ ok: false, error: (error as Error).message } satisfies CheckpointReply)}\n`);
        return;
      }
      const reply = this.queue.then(() => handle(request));
      this.queue = reply.catch(() => undefined);
      reply.then(
        (answer) => socket.end(`${JSON.stringify(answer)}\n`),
        (error: Error) =>
          socket.end(`${JSON.stringify({ ok: false, error: error.message } satisfies CheckpointReply)}\n`),
      );
    });
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
): Promise<CheckpointReply> {
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
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(new ControlError(`no running container named "${name}" (${error.message})`, { cause: error }));
    });
    socket.on('end', () => {
      clearTimeout(timer);
      if (!answer.trim()) {
        reject(new ControlError(`container "${name}" closed the connection without an answer`));
        return;
      }
      try {
        resolve(parseLine(CheckpointReply, answer.trim(), `answer from container "${name}"`));
      } catch (error) {
        reject(error);
      }
    });
  });
}

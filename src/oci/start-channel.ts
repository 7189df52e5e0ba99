import { connect, createServer, type Server } from 'node:net';
import * as v from 'valibot';
import { check } from '../platform/schema.js';
import { RuntimeStateError } from './errors.js';

/**
 * How `start` releases a created guest (runc's exec fifo, as a socket so the guest can answer):
 * the guest process listens on ROOT/ID/start.sock; `start` connects; the guest starts its module
 * and answers one JSON line, then stops listening.
 */
const StartReply = v.variant('ok', [
  v.object({ ok: v.literal(true) }),
  v.object({ ok: v.literal(false), error: v.string() }),
]);
type StartReply = v.InferOutput<typeof StartReply>;

/** Listens for the one `start`; `begin` runs the guest (its failure is the reply's error). */
export async function listenForStart(socketPath: string, begin: () => Promise<void>): Promise<Server> {
  const server = createServer((socket) => {
    server.close(); // one start only
    socket.on('error', () => undefined);
    begin().then(
      () => socket.end(`${JSON.stringify({ ok: true } satisfies StartReply)}\n`),
      (error: Error) => socket.end(`${JSON.stringify({ ok: false, error: error.message } satisfies StartReply)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  return server;
}

/** Releases the guest of `id`; resolves once it runs. */
export function requestStart(id: string, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('error', (error) =>
      reject(new RuntimeStateError(`container ${id} is not waiting for start (${error.message})`, { cause: error })),
    );
    socket.on('end', () => {
      let json: unknown;
      try {
        json = JSON.parse(answer);
      } catch {
        json = undefined;
      }
      const reply = check(StartReply, json);
      if (!reply.ok) reject(new RuntimeStateError(`container ${id} ended before it started`));
      else if (!reply.value.ok) reject(new RuntimeStateError(`container ${id} did not start: ${reply.value.error}`));
      else resolve();
    });
  });
}

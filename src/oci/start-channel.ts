import { connect, createServer, type Server } from 'node:net';
import * as v from 'valibot';
import { check } from '../platform/schema.js';
import { RuntimeStateError } from './errors.js';

/**
 * How the guest process answers `create` (one JSON line on its fd 3: it is ready, or why it cannot
 * run) and `start` (the same, on the socket `start` connected to).
 */
export const GuestReply = v.variant('ok', [
  v.object({ ok: v.literal(true) }),
  v.object({ ok: v.literal(false), error: v.string() }),
]);
export type GuestReply = v.InferOutput<typeof GuestReply>;

/** A reply line as sent; undefined for anything else (the guest process died mid-way). */
export function parseGuestReply(line: string): GuestReply | undefined {
  try {
    const checked = check(GuestReply, JSON.parse(line));
    return checked.ok ? checked.value : undefined;
  } catch {
    return undefined;
  }
}

/*
 * How `start` releases a created guest (runc's exec fifo, as a socket so the guest can answer):
 * the guest process listens on ROOT/ID/start.sock; `start` connects; the guest starts its module
 * and answers, then stops listening.
 */

/** Listens for the one `start`; `begin` runs the guest (its failure is the reply's error). */
export async function listenForStart(socketPath: string, begin: () => Promise<void>): Promise<Server> {
  const server = createServer((socket) => {
    server.close(); // one start only
    socket.on('error', () => undefined);
    begin().then(
      () => socket.end(`${JSON.stringify({ ok: true } satisfies GuestReply)}\n`),
      (error: Error) => socket.end(`${JSON.stringify({ ok: false, error: error.message } satisfies GuestReply)}\n`),
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
      const reply = parseGuestReply(answer);
      if (!reply) reject(new RuntimeStateError(`container ${id} ended before it started`));
      else if (!reply.ok) reject(new RuntimeStateError(`container ${id} did not start: ${reply.error}`));
      else resolve();
    });
  });
}

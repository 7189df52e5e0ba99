/**
 * The control socket of a named container, on its own thread: the guest runs on the main thread
 * and may be computing, so this thread raises the stop flag, and the main thread (once the guest
 * stopped) answers through postMessage.
 */
import { createServer, type Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { requestStop } from '../engine/instance.js';
import type { CheckpointRequest, ControlReply } from './control-protocol.js';

const { socketPath, stopFlag } = workerData as { socketPath: string; stopFlag: Int32Array };
const waiting = new Map<number, Socket>();
let nextId = 1;

const server = createServer((socket) => {
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    const newline = buffered.indexOf('\n');
    if (newline < 0) return;
    let request: CheckpointRequest;
    try {
      request = JSON.parse(buffered.slice(0, newline)) as CheckpointRequest;
    } catch {
      socket.end(`${JSON.stringify({ ok: false, error: 'malformed request' } satisfies ControlReply)}\n`);
      return;
    }
    const id = nextId++;
    waiting.set(id, socket);
    parentPort!.postMessage({ id, request });
    requestStop(stopFlag);
  });
  socket.on('error', () => undefined);
});

server.listen(socketPath, () => parentPort!.postMessage({ listening: true }));
server.on('error', (error) => parentPort!.postMessage({ error: error.message }));

parentPort!.on('message', (message: { id: number; reply: ControlReply } | 'close') => {
  if (message === 'close') {
    for (const socket of waiting.values())
      socket.end(`${JSON.stringify({ ok: false, error: 'the container exited' } satisfies ControlReply)}\n`);
    server.close();
    parentPort!.close();
    return;
  }
  const socket = waiting.get(message.id);
  waiting.delete(message.id);
  socket?.end(`${JSON.stringify(message.reply)}\n`);
});

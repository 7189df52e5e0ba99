import { createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';

/**
 * The peer of a guest's outgoing connections (test/fixtures/outbound.c), for the tests and the
 * bench: a line server outside Roam on one of this machine's own addresses, not loopback
 * (127.0.0.0/8 is the container's own).
 */
export const serverAddress = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

/** Answers each line "n" with "n n*n", and records every connection and every number it got. */
export class SquareServer {
  readonly server: Server;
  readonly connections: Socket[] = [];
  readonly received: number[] = [];

  constructor() {
    this.server = createServer((socket) => {
      this.connections.push(socket);
      let buffered = '';
      socket.setEncoding('utf8');
      socket.setNoDelay(true);
      socket.on('data', (chunk: string) => {
        buffered += chunk;
        let newline = buffered.indexOf('\n');
        while (newline >= 0) {
          const n = Number(buffered.slice(0, newline));
          buffered = buffered.slice(newline + 1);
          this.received.push(n);
          socket.write(`${n} ${n * n}\n`);
          newline = buffered.indexOf('\n');
        }
      });
      socket.on('error', () => undefined);
    });
  }

  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(port, serverAddress, resolve));
  }

  close(): void {
    for (const socket of this.connections) socket.destroy();
    this.server.close();
  }
}

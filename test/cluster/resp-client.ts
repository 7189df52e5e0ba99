import { connect } from 'node:net';

/** A RESP client that checks every answer: SETs keys, reads them back, counts errors. */
export class CheckingClient {
  private readonly socket;
  private buffered = '';
  private readonly waiting: ((line: string) => void)[] = [];
  closed = false;

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => {
      this.buffered += chunk;
      this.drain();
    });
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => undefined);
  }

  /** Sends one command, resolves with its reply (simple, error, integer or bulk: one value). */
  command(...args: string[]): Promise<string> {
    this.socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private drain(): void {
    for (;;) {
      const end = this.buffered.indexOf('\r\n');
      if (end < 0) return;
      const head = this.buffered.slice(0, end);
      let length = end + 2;
      let value = head;
      if (head.startsWith('$') && head !== '$-1') {
        const size = Number(head.slice(1));
        if (this.buffered.length < length + size + 2) return;
        value = this.buffered.slice(length, length + size);
        length += size + 2;
      }
      this.buffered = this.buffered.slice(length);
      this.waiting.shift()?.(value);
    }
  }

  end(): void {
    this.socket.end();
  }
}

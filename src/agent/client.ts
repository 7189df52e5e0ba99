import { type IncomingMessage, request } from 'node:http';
import {
  apiPrefix,
  type ContainerInfo,
  type IncomingReply,
  type IncomingRequest,
  type MigrateLine,
  type MigrateRequest,
  type StartRequest,
} from './api.js';
import type { NodeFacts } from './facts.js';

/** An agent answered with an error (status and its one-line message), or could not be reached. */
export class AgentError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Talks to one agent's HTTP API. */
export class AgentClient {
  constructor(
    readonly url: string,
    private readonly token: string,
  ) {}

  node(): Promise<NodeFacts> {
    return this.json('GET', '/node');
  }

  containers(): Promise<ContainerInfo[]> {
    return this.json('GET', '/containers');
  }

  container(id: string): Promise<ContainerInfo> {
    return this.json('GET', `/containers/${encodeURIComponent(id)}`);
  }

  async hasModule(digest: string): Promise<boolean> {
    const response = await this.send('HEAD', `/modules/${digest}`);
    response.resume();
    return response.statusCode === 200;
  }

  async putModule(digest: string, bytes: Uint8Array): Promise<void> {
    await this.json('PUT', `/modules/${digest}`, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
  }

  start(body: StartRequest): Promise<ContainerInfo> {
    return this.json('POST', '/containers', body);
  }

  stop(id: string): Promise<ContainerInfo> {
    return this.json('POST', `/containers/${encodeURIComponent(id)}/stop`);
  }

  prepareIncoming(body: IncomingRequest): Promise<IncomingReply> {
    return this.json('POST', '/migrations', body);
  }

  /** Migrates and reports progress; resolves with the last line (a result or an error). */
  async migrate(id: string, body: MigrateRequest, onLine: (line: MigrateLine) => void): Promise<MigrateLine> {
    const response = await this.send(
      'POST',
      `/containers/${encodeURIComponent(id)}/migrate`,
      Buffer.from(JSON.stringify(body)),
    );
    if (response.statusCode !== 200) throw await errorOf(response);
    let last: MigrateLine = { error: 'the source agent ended the migration without a result' };
    let buffered = '';
    response.setEncoding('utf8');
    for await (const chunk of response) {
      buffered += chunk as string;
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        last = JSON.parse(buffered.slice(0, newline)) as MigrateLine;
        buffered = buffered.slice(newline + 1);
        onLine(last);
      }
    }
    return last;
  }

  /**
   * The container's log from byte `offset`, written to `out` as it comes. With `follow`, keeps
   * going until the container ends or moves; resolves with the bytes written and where it moved.
   */
  async logs(
    id: string,
    options: { offset: number; follow: boolean },
    out: (chunk: Buffer) => void,
  ): Promise<{ bytes: number; movedTo?: string }> {
    const query = `?offset=${options.offset}${options.follow ? '&follow=1' : ''}`;
    const response = await this.send('GET', `/containers/${encodeURIComponent(id)}/logs${query}`);
    if (response.statusCode !== 200) throw await errorOf(response);
    let bytes = 0;
    for await (const chunk of response) {
      bytes += (chunk as Buffer).length;
      out(chunk as Buffer);
    }
    const movedTo = response.trailers['x-roam-moved-to'];
    return { bytes, movedTo: movedTo || undefined };
  }

  private async json<T>(method: string, path: string, body?: object | Buffer): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const response = await this.send(method, path, payload);
    if ((response.statusCode ?? 500) >= 300) throw await errorOf(response);
    const text = await readAll(response);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  private send(method: string, path: string, body?: Buffer): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request(`${this.url}${apiPrefix}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body ? { 'content-length': body.length } : {}) },
      });
      req.on('response', resolve);
      req.on('error', (error) => reject(new AgentError(`cannot reach the agent at ${this.url}: ${error.message}`)));
      req.end(body);
    });
  }
}

async function readAll(response: IncomingMessage): Promise<string> {
  let text = '';
  response.setEncoding('utf8');
  for await (const chunk of response) text += chunk as string;
  return text;
}

async function errorOf(response: IncomingMessage): Promise<AgentError> {
  const text = await readAll(response);
  let message = text;
  try {
    message = (JSON.parse(text) as { error: string }).error;
  } catch {
    // not JSON: keep the text
  }
  return new AgentError(message || `HTTP ${response.statusCode}`, response.statusCode);
}

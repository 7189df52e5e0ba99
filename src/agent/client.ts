import { type IncomingMessage, request } from 'node:http';
import type * as v from 'valibot';
import { RoamError } from '../platform/errors.js';
import { ErrorReplySchema } from '../platform/http.js';
import { check } from '../platform/schema.js';
import {
  apiPrefix,
  type ContainerInfo,
  ContainerInfoSchema,
  ContainerListSchema,
  type FenceReply,
  FenceReplySchema,
  type IncomingReply,
  IncomingReplySchema,
  type IncomingRequest,
  type MigrateLine,
  MigrateLineSchema,
  type MigrateRequest,
  ModuleStoredSchema,
  type NodeFacts,
  NodeFactsSchema,
  type StartRequest,
} from './api.js';

export type AgentErrorCode =
  /** The agent answered with an error status (`status`; the message is its `error`). */
  | 'ROAM_AGENT_REFUSED'
  /** The agent could not be reached, or the connection broke before the answer was complete. */
  | 'ROAM_AGENT_UNREACHABLE'
  /** The agent did not answer in time. */
  | 'ROAM_AGENT_TIMEOUT'
  /** The agent's answer is not what the API says (not JSON, or not of the documented shape). */
  | 'ROAM_AGENT_BAD_ANSWER';

/** An agent answered with an error, could not be reached, did not answer in time, or answered nonsense. */
export class AgentError extends RoamError {
  constructor(
    readonly code: AgentErrorCode,
    message: string,
    options: { status?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.status = options.status;
  }

  /** The HTTP status of an error answer. */
  readonly status: number | undefined;
}

/**
 * How long a request may wait for the agent (socket inactivity, so a long answer that keeps coming
 * is not cut off): small JSON calls; recover, whose agent asks the destination's agent first (a
 * call of its own); the calls that start a container process (compiling a large module under
 * emulation takes a while); a migration, whose source agent prepares the destination (module
 * upload and start, their limits below) before its first line and is silent in the downtime and
 * while it waits for the destination (sender.ts answerTimeouts); a followed log has no limit.
 */
export const agentTimeouts = {
  call: 10_000,
  recover: 30_000,
  process: 180_000,
  upload: 600_000,
  migration: 900_000,
};

/** Talks to one agent's HTTP API; every answer is checked against its schema. */
export class AgentClient {
  private readonly timeoutMs: number;

  /** `timeoutMs` replaces the limit of small calls (agentTimeouts.call). */
  constructor(
    readonly url: string,
    private readonly token: string,
    options: { timeoutMs?: number } = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? agentTimeouts.call;
  }

  node(): Promise<NodeFacts> {
    return this.json(NodeFactsSchema, 'GET', '/node');
  }

  containers(): Promise<ContainerInfo[]> {
    return this.json(ContainerListSchema, 'GET', '/containers');
  }

  container(id: string): Promise<ContainerInfo> {
    return this.json(ContainerInfoSchema, 'GET', `/containers/${encodeURIComponent(id)}`);
  }

  async hasModule(digest: string): Promise<boolean> {
    const response = await this.send('HEAD', `/modules/${digest}`, { timeoutMs: this.timeoutMs });
    response.resume();
    if (response.statusCode === 200 || response.statusCode === 404) return response.statusCode === 200;
    throw new AgentError(
      'ROAM_AGENT_REFUSED',
      `the agent at ${this.url} answered HEAD with HTTP ${response.statusCode}`,
      {
        status: response.statusCode,
      },
    );
  }

  async putModule(digest: string, bytes: Uint8Array): Promise<void> {
    const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    await this.json(ModuleStoredSchema, 'PUT', `/modules/${digest}`, body, agentTimeouts.upload);
  }

  start(body: StartRequest): Promise<ContainerInfo> {
    return this.json(ContainerInfoSchema, 'POST', '/containers', body, agentTimeouts.process);
  }

  stop(id: string): Promise<ContainerInfo> {
    return this.json(ContainerInfoSchema, 'POST', `/containers/${encodeURIComponent(id)}/stop`);
  }

  prepareIncoming(body: IncomingRequest): Promise<IncomingReply> {
    return this.json(IncomingReplySchema, 'POST', '/migrations', body, agentTimeouts.process);
  }

  /**
   * Aborts epoch `epoch` of container `id` here unless its guest ran (docs/fencing.md); the answer
   * says which. Rejects when the agent cannot be asked: then nobody knows.
   */
  fence(id: string, epoch: number): Promise<FenceReply> {
    return this.json(FenceReplySchema, 'POST', `/containers/${encodeURIComponent(id)}/fence`, { epoch });
  }

  /** Settles an unsettled container (its source asks the destination again); its record after. */
  recover(id: string): Promise<ContainerInfo> {
    return this.json(
      ContainerInfoSchema,
      'POST',
      `/containers/${encodeURIComponent(id)}/recover`,
      undefined,
      agentTimeouts.recover,
    );
  }

  /** Migrates and reports progress; resolves with the last line (a result or an error). */
  async migrate(id: string, body: MigrateRequest, onLine: (line: MigrateLine) => void): Promise<MigrateLine> {
    const path = `/containers/${encodeURIComponent(id)}/migrate`;
    const response = await this.send('POST', path, {
      body: Buffer.from(JSON.stringify(body)),
      timeoutMs: agentTimeouts.migration,
    });
    if (response.statusCode !== 200) throw await this.errorOf(response);
    let last: MigrateLine = { error: 'the source agent ended the migration without a result' };
    let buffered = '';
    response.setEncoding('utf8');
    await this.reading(response, async () => {
      for await (const chunk of response) {
        buffered += chunk as string;
        for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
          last = this.parse(MigrateLineSchema, buffered.slice(0, newline), `POST ${apiPrefix}${path}`);
          buffered = buffered.slice(newline + 1);
          onLine(last);
        }
      }
    });
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
    // A followed log may stay quiet for as long as the container does.
    const response = await this.send('GET', `/containers/${encodeURIComponent(id)}/logs${query}`, {
      timeoutMs: this.timeoutMs,
      streaming: options.follow,
    });
    if (response.statusCode !== 200) throw await this.errorOf(response);
    let bytes = 0;
    await this.reading(response, async () => {
      for await (const chunk of response) {
        bytes += (chunk as Buffer).length;
        out(chunk as Buffer);
      }
    });
    const movedTo = response.trailers['x-roam-moved-to'];
    return { bytes, movedTo: movedTo || undefined };
  }

  private async json<S extends v.GenericSchema>(
    schema: S,
    method: string,
    path: string,
    body?: object | Buffer,
    timeoutMs = this.timeoutMs,
  ): Promise<v.InferOutput<S>> {
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const response = await this.send(method, path, { body: payload, timeoutMs });
    if ((response.statusCode ?? 500) >= 300) throw await this.errorOf(response);
    return this.parse(schema, await this.readAll(response), `${method} ${apiPrefix}${path}`);
  }

  /** An answer checked against its schema. */
  private parse<S extends v.GenericSchema>(schema: S, text: string, request: string): v.InferOutput<S> {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new AgentError('ROAM_AGENT_BAD_ANSWER', `the agent at ${this.url} answered ${request} with no JSON`, {
        cause: error,
      });
    }
    const checked = check(schema, value);
    if (!checked.ok)
      throw new AgentError(
        'ROAM_AGENT_BAD_ANSWER',
        `the agent at ${this.url} answered ${request} with an unexpected body: ${checked.message}`,
      );
    return checked.value;
  }

  /**
   * Sends a request; resolves with the answer's head. Until then (and, unless `streaming`, until
   * the body is read) `timeoutMs` of silence ends it with ROAM_AGENT_TIMEOUT; without `timeoutMs`
   * it may wait forever (a migration's preparation has limits of its own on the agent).
   */
  private send(
    method: string,
    path: string,
    options: { body?: Buffer; timeoutMs?: number; streaming?: boolean } = {},
  ): Promise<IncomingMessage> {
    const { body, timeoutMs, streaming = false } = options;
    return new Promise((resolve, reject) => {
      const req = request(`${this.url}${apiPrefix}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body ? { 'content-length': body.length } : {}) },
      });
      let response: IncomingMessage | undefined;
      let timedOut: AgentError | undefined;
      if (timeoutMs !== undefined) {
        req.setTimeout(timeoutMs, () => {
          timedOut = new AgentError(
            'ROAM_AGENT_TIMEOUT',
            `the agent at ${this.url} did not answer ${method} ${apiPrefix}${path} within ${timeoutMs / 1000} s`,
          );
          // A body being read fails with this error, not with the socket's.
          response?.destroy(timedOut);
          req.destroy(timedOut);
        });
      }
      req.on('response', (answer: IncomingMessage) => {
        response = answer;
        if (streaming) req.setTimeout(0);
        resolve(answer);
      });
      req.on('error', (error) =>
        reject(
          timedOut ??
            new AgentError('ROAM_AGENT_UNREACHABLE', `cannot reach the agent at ${this.url}: ${error.message}`, {
              cause: error,
            }),
        ),
      );
      req.end(body);
    });
  }

  /** Reads an answer's body; a connection that breaks meanwhile is an AgentError. */
  private async reading(response: IncomingMessage, read: () => Promise<void>): Promise<void> {
    try {
      await read();
    } catch (error) {
      if (error instanceof RoamError) throw error;
      throw new AgentError(
        'ROAM_AGENT_UNREACHABLE',
        `lost the connection to the agent at ${this.url} during its answer: ${(error as Error).message}`,
        { cause: error, status: response.statusCode },
      );
    }
  }

  private async readAll(response: IncomingMessage): Promise<string> {
    let text = '';
    response.setEncoding('utf8');
    await this.reading(response, async () => {
      for await (const chunk of response) text += chunk as string;
    });
    return text;
  }

  /** An error answer: its `error`, else its text, else its status. */
  private async errorOf(response: IncomingMessage): Promise<AgentError> {
    const text = await this.readAll(response);
    let message = text.trim();
    try {
      const reply = check(ErrorReplySchema, JSON.parse(text));
      if (reply.ok) message = reply.value.error;
    } catch {
      // not JSON: keep the text
    }
    return new AgentError('ROAM_AGENT_REFUSED', message || `HTTP ${response.statusCode}`, {
      status: response.statusCode,
    });
  }
}

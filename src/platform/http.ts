import { timingSafeEqual } from 'node:crypto';
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:net';
import * as v from 'valibot';
import { RoamError } from './errors.js';
import { check, jsonObject } from './schema.js';

/** The small JSON-over-HTTP toolkit of Roam's daemons (agent, gateway). */

/** An error answer: HTTP status and a one-line message. */
export class HttpError extends RoamError {
  readonly code = 'ROAM_HTTP_ERROR';

  constructor(
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A request body checked against its schema; anything else is a 400 naming the field and what it expects. */
export function parseBody<S extends v.GenericSchema>(schema: S, value: unknown): v.InferOutput<S> {
  const checked = check(schema, value);
  if (!checked.ok) throw new HttpError(400, checked.message);
  return checked.value;
}

export function reply(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req) {
    length += (chunk as Buffer).length;
    if (length > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function jsonBody(req: IncomingMessage): Promise<unknown> {
  const text = (await readBody(req, 1 << 20)).toString('utf8');
  try {
    return JSON.parse(text || 'null');
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
}

/** True when the request carries `Authorization: Bearer TOKEN` (compared in constant time). */
export function hasToken(req: IncomingMessage, token: string): boolean {
  const given = Buffer.from(req.headers.authorization ?? '');
  const expected = Buffer.from(`Bearer ${token}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** What serve() answers for a request that failed (any status but 2xx), as clients read it. */
export const ErrorReplySchema = jsonObject({ error: v.string('expected a string') }, 'an error {error}');

/** Runs a request handler, turning thrown errors into JSON error answers. */
export function serve(handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    handler(req, res).catch((error: unknown) => {
      const status = error instanceof HttpError ? error.status : 500;
      const message = error instanceof Error ? error.message : String(error);
      if (res.headersSent) res.destroy();
      else reply(res, status, { error: message });
    });
  };
}

/**
 * A route: `METHOD /path` exactly, or a pattern whose groups become the handler's parameters.
 * dispatch() runs the first route that matches and resolves to false when none does.
 */
export type Route = [string | RegExp, (params: string[]) => unknown];

export async function dispatch(request: string, routes: Route[]): Promise<boolean> {
  for (const [pattern, handler] of routes) {
    const match = typeof pattern === 'string' ? (pattern === request ? [] : null) : pattern.exec(request)?.slice(1);
    if (!match) continue;
    await handler(match as string[]);
    return true;
  }
  return false;
}

/** Listens on host:port (0: any free port); resolves with the port. */
export function listenOn(server: Server | HttpServer, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

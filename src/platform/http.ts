import { timingSafeEqual } from 'node:crypto';
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:net';
import * as v from 'valibot';
import { RoamError } from './errors.js';

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

/**
 * A JSON object with these fields (others are dropped), for wire types. Its messages say what was
 * expected: `what` when the value is not an object at all, and for a missing field what that
 * field's own schema expects (valibot would otherwise report the object's message there).
 */
export function jsonObject<const E extends v.ObjectEntries>(entries: E, what: string) {
  return v.pipe(plainObject(what), v.object(entries, objectMessage(entries, what)));
}

/** jsonObject(), but a field it does not know is an error too. */
export function strictJsonObject<const E extends v.ObjectEntries>(entries: E, what: string) {
  return v.pipe(plainObject(what), v.strictObject(entries, objectMessage(entries, what)));
}

/** A JSON object of values of one schema, keyed by any string. */
export function jsonRecord<const S extends v.GenericSchema>(values: S, what: string) {
  return v.pipe(plainObject(what), v.record(v.string(), values, `expected ${what}`));
}

/** An object and not an array (valibot's objects take arrays for objects). */
const plainObject = (what: string) => v.custom<Record<string, unknown>>(isObject, `expected ${what}`);

function objectMessage(entries: v.ObjectEntries, what: string) {
  return (issue: v.BaseIssue<unknown>): string => {
    const key = issue.path?.at(-1)?.key;
    if (typeof key !== 'string') return `expected ${what}`;
    const entry = entries[key];
    if (!entry) return 'unexpected field';
    return v.safeParse(entry, undefined).issues?.[0].message ?? 'required';
  };
}

/** A TCP port number (1-65535), as the wire types of the daemons and the cluster file carry them. */
export const tcpPortSchema = v.pipe(
  v.number('expected a TCP port number'),
  v.integer('expected a TCP port number'),
  v.minValue(1, 'expected a TCP port number (1-65535)'),
  v.maxValue(65535, 'expected a TCP port number (1-65535)'),
);

/** Where an issue lies, as a person would write it: `dirs[0].hostPath`, `env["A B"]`. */
export function issuePath(issue: v.BaseIssue<unknown>): string {
  let path = '';
  for (const { key } of issue.path ?? []) {
    if (typeof key === 'number') path += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_$][\w$]*$/.test(key)) path += path ? `.${key}` : key;
    else path += `[${JSON.stringify(key)}]`;
  }
  return path;
}

/** The first issue as one line: `args: expected an array of strings`. */
export function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  const issue = issues[0];
  if (!issue) return 'invalid value';
  const path = issuePath(issue);
  return path ? `${path}: ${issue.message}` : issue.message;
}

/** The value as the schema's output, or the first thing wrong with it as one line. */
export function check<S extends v.GenericSchema>(
  schema: S,
  value: unknown,
): { ok: true; value: v.InferOutput<S> } | { ok: false; message: string } {
  const result = v.safeParse(schema, value, { abortEarly: true });
  return result.success ? { ok: true, value: result.output } : { ok: false, message: describeIssues(result.issues) };
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

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** True when the request carries `Authorization: Bearer TOKEN` (compared in constant time). */
export function hasToken(req: IncomingMessage, token: string): boolean {
  const given = Buffer.from(req.headers.authorization ?? '');
  const expected = Buffer.from(`Bearer ${token}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

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

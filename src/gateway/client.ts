import * as v from 'valibot';
import { RoamError } from '../platform/errors.js';
import { ErrorReplySchema } from '../platform/http.js';
import { check } from '../platform/schema.js';
import {
  type AttachRecord,
  AttachRecordSchema,
  type PortInfo,
  PortInfoSchema,
  type Publication,
  PublicationSchema,
} from './gateway.js';

export type GatewayErrorCode =
  /** The gateway answered with an error status (`status`; the message is its `error`). */
  | 'ROAM_GATEWAY_REFUSED'
  /** The gateway could not be reached, or the connection broke before the answer was complete. */
  | 'ROAM_GATEWAY_UNREACHABLE'
  /** The gateway did not answer in time. */
  | 'ROAM_GATEWAY_TIMEOUT'
  /** The gateway's answer is not what the API says (not JSON, or not of the documented shape). */
  | 'ROAM_GATEWAY_BAD_ANSWER';

/** The gateway answered with an error, could not be reached, did not answer in time, or answered nonsense. */
export class GatewayError extends RoamError {
  constructor(
    readonly code: GatewayErrorCode,
    message: string,
    options: { status?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.status = options.status;
  }

  /** The HTTP status of an error answer. */
  readonly status: number | undefined;
}

/** How long a call to the gateway may take, answer included (every call is small). */
export const gatewayTimeoutMs = 10_000;

/** Talks to a gateway's HTTP API; every answer is checked against its schema. */
export class GatewayClient {
  private readonly timeoutMs: number;

  constructor(
    readonly url: string,
    private readonly token: string,
    options: { timeoutMs?: number } = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? gatewayTimeoutMs;
  }

  ports(): Promise<PortInfo[]> {
    return this.call(v.array(PortInfoSchema, 'expected an array of publications'), 'GET', '/v1/ports');
  }

  /** The attach log: every tunnel attach and refusal, oldest first (the newest attachLogLimit). */
  attachments(): Promise<AttachRecord[]> {
    return this.call(v.array(AttachRecordSchema, 'expected an array of attach records'), 'GET', '/v1/attachments');
  }

  publish(publication: Publication): Promise<Publication> {
    return this.call(PublicationSchema, 'POST', '/v1/ports', publication);
  }

  /** Unpublishes a container's ports and closes its client connections. */
  forget(container: string): Promise<Publication[]> {
    return this.call(
      v.array(PublicationSchema, 'expected an array of publications'),
      'DELETE',
      `/v1/containers/${container}`,
    );
  }

  private async call<S extends v.GenericSchema>(
    schema: S,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<v.InferOutput<S>> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    const failure = (error: unknown, doing: string): GatewayError =>
      signal.aborted
        ? new GatewayError(
            'ROAM_GATEWAY_TIMEOUT',
            `the gateway at ${this.url} did not answer ${method} ${path} within ${this.timeoutMs / 1000} s`,
            { cause: error },
          )
        : new GatewayError(
            'ROAM_GATEWAY_UNREACHABLE',
            `${doing} the gateway at ${this.url}: ${(error as Error).message}`,
            {
              cause: error,
            },
          );
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${this.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (error) {
      throw failure(error, 'cannot reach');
    }
    try {
      text = await response.text();
    } catch (error) {
      throw failure(error, 'lost the connection to');
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      if (!response.ok)
        throw new GatewayError('ROAM_GATEWAY_REFUSED', `gateway: ${text.trim() || `HTTP ${response.status}`}`, {
          status: response.status,
        });
      throw new GatewayError(
        'ROAM_GATEWAY_BAD_ANSWER',
        `the gateway at ${this.url} answered ${method} ${path} with no JSON`,
        {
          cause: error,
        },
      );
    }
    if (!response.ok) {
      const reply = check(ErrorReplySchema, value);
      throw new GatewayError(
        'ROAM_GATEWAY_REFUSED',
        `gateway: ${reply.ok ? reply.value.error : `HTTP ${response.status}`}`,
        {
          status: response.status,
        },
      );
    }
    const checked = check(schema, value);
    if (!checked.ok)
      throw new GatewayError(
        'ROAM_GATEWAY_BAD_ANSWER',
        `the gateway at ${this.url} answered ${method} ${path} with an unexpected body: ${checked.message}`,
      );
    return checked.value;
  }
}

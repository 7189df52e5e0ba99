import type { Publication } from './gateway.js';

export class GatewayError extends Error {}

/** Talks to a gateway's HTTP API. */
export class GatewayClient {
  constructor(
    readonly url: string,
    private readonly token: string,
  ) {}

  ports(): Promise<(Publication & { attached: boolean; connections: number })[]> {
    return this.call('GET', '/v1/ports');
  }

  publish(publication: Publication): Promise<Publication> {
    return this.call('POST', '/v1/ports', publication);
  }

  /** Unpublishes a container's ports and closes its client connections. */
  forget(container: string): Promise<Publication[]> {
    return this.call('DELETE', `/v1/containers/${container}`);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new GatewayError(`cannot reach the gateway at ${this.url}: ${(error as Error).message}`);
    }
    const value = (await response.json()) as T & { error?: string };
    if (!response.ok) throw new GatewayError(`gateway: ${value.error ?? `HTTP ${response.status}`}`);
    return value;
  }
}

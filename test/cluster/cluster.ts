import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { type Result, repoRoot, roam, roamInBackground } from '../helpers.js';

/** A local cluster of this test's own (ROAM_CLUSTER_DIR), driven through the CLI. */
export class TestCluster {
  readonly env: NodeJS.ProcessEnv;

  constructor(dir: string, extraEnv: NodeJS.ProcessEnv = {}) {
    this.env = { ...process.env, ROAM_CLUSTER_DIR: dir, ...extraEnv };
  }

  roam(args: string[]): Result {
    return roam(args, { env: this.env });
  }

  /** Runs a roam command in the background (the test's event loop keeps going); must succeed. */
  async okAsync(args: string[]): Promise<string> {
    const result = await roamInBackground(args, { env: this.env }).done;
    assert.equal(result.status, 0, `roam ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  }

  /** Runs a roam command that must succeed; returns its stdout. */
  ok(args: string[]): string {
    const result = this.roam(args);
    assert.equal(result.status, 0, `roam ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  }

  up(isas: string): void {
    this.ok(['up', '--isa', isas]);
  }

  down(): void {
    this.roam(['down']);
  }

  /** Starts a container with `roam run --node`; returns its ID (the last line). */
  run(node: string, args: string[]): string {
    return this.ok(['run', '--node', node, ...args])
      .trim()
      .split('\n')
      .pop()!;
  }

  /** Where the container runs now (roam ps --json). */
  where(id: string): { node: string; status: string; dirs: { hostPath: string }[] } {
    const list = JSON.parse(this.ok(['ps', '--all', '--json'])) as {
      id: string;
      node: string;
      status: string;
      dirs: { hostPath: string }[];
    }[];
    const found = list.find((c) => c.id === id);
    assert.ok(found, `container ${id} is listed`);
    return found;
  }
}

export const primesSource = join(repoRoot, 'examples', 'primes.c');

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { sleep } from '../helpers.js';
import type { BuiltProgram } from '../programs/programs.js';
import type { TestCluster } from './cluster.js';

/** Debian's redis-tools (redis-cli, redis-benchmark) are there: the Redis tests need them. */
export const haveRedisTools = spawnSync('redis-benchmark', ['--version']).status === 0;

/** What Redis's own CI passes to a server it tests from outside: no background saves (no fork here). */
const serverArgs = [
  '--port',
  '6379',
  '--save',
  '',
  '--daemonize',
  'no',
  '--dir',
  '/data',
  '--enable-debug-command',
  'yes',
];

/** Starts Redis (recipes/redis) on `node`, published on `port`, its --dir the host directory `data`. */
export function startRedis(
  cluster: TestCluster,
  redis: BuiltProgram,
  node: string,
  port: number,
  data: string,
): string {
  mkdirSync(data, { recursive: true });
  return cluster.run(node, ['-p', `${port}:6379`, '--dir', `${data}:/data`, redis.migratable, '--', ...serverArgs]);
}

export async function waitForPong(port: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (cli(port, 'PING') === 'PONG') return;
    await sleep(200);
  }
  assert.fail('Redis did not answer PING');
}

/** One redis-cli command; its reply, trimmed. */
export function cli(port: number, ...args: string[]): string {
  return spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).stdout.trim();
}

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Cluster, startCluster, startOnNode, stopCluster } from '../src/cluster/cluster.js';
import { freePort } from '../test/cluster/cluster.js';
import { programsDir } from '../test/programs/programs.js';
import { repoRoot, roamSync, table } from './harness.js';
import { compareThroughput, waitForPort } from './kv.js';

/** The first goal for Redis under Roam; the server data path work is to raise it. */
const throughputTarget = 0.7;
/** Both servers: no background saves (they fork), in the foreground. */
const serverArgs = ['--save', '', '--daemonize', 'no'];

/**
 * Redis 7.0.15 (recipes/redis) under redis-benchmark: built natively with gcc from the same
 * source and variables, and unchanged under Roam on x64 behind the gateway, side by side.
 */
export async function redisBench(work: string, requests: number, rounds: number): Promise<string> {
  mkdirSync(join(work, 'data'), { recursive: true });
  const built = spawnSync(join(repoRoot, 'recipes', 'redis', 'build'), [programsDir], {
    encoding: 'utf8',
    env: { ...process.env, ROAM_REDIS_NATIVE: '1' },
  });
  if (built.status !== 0) throw new Error(`recipes/redis/build failed: ${built.stderr}`);
  const module = join(work, 'redis.roam.wasm');
  roamSync(['build', join(programsDir, 'redis.wasm'), '-o', module]);
  const saved = process.env.ROAM_CLUSTER_DIR;
  process.env.ROAM_CLUSTER_DIR = join(work, 'cluster');
  const nativePort = await freePort();
  const server = spawn(join(programsDir, 'redis.native'), ['--port', String(nativePort), ...serverArgs], {
    stdio: 'ignore',
    cwd: join(work, 'data'),
  });
  let cluster: Cluster | undefined;
  let rows: (string | number)[][] = [];
  let ratios: number[] = [];
  try {
    cluster = await startCluster(['x64']);
    const roamPort = await freePort();
    await startOnNode(
      cluster,
      'x64',
      module,
      {
        args: ['redis-server', '--port', '6379', ...serverArgs, '--dir', '/data'],
        dirs: [{ hostPath: join(work, 'data'), guestPath: '/data' }],
      },
      [{ hostPort: roamPort, port: 6379 }],
    );
    await waitForPort(nativePort);
    await waitForPort(roamPort, 120_000);
    ({ rows, ratios } = compareThroughput('redis', nativePort, roamPort, requests, rounds));
  } finally {
    server.kill();
    if (cluster) await stopCluster(cluster);
    if (saved === undefined) delete process.env.ROAM_CLUSTER_DIR;
    else process.env.ROAM_CLUSTER_DIR = saved;
  }
  const worst = Math.min(...ratios);
  return [
    '### Redis 7.0.15, unchanged (recipes/redis): throughput',
    '',
    `redis-benchmark (Debian redis-tools), 50 clients, ${requests} requests per test, median of ${rounds} interleaved rounds. Native: redis-server built with gcc from the same Debian source and variables (\`MALLOC=libc BUILD_TLS=no\`); Roam: the same source built with roam cc, \`roam build\`, run on x64 behind the gateway. Both with \`--save ""\`.`,
    '',
    table(['test', 'pipeline', 'native (requests/s)', 'Roam (requests/s)', 'Roam / native'], rows),
    '',
    `**Target: Roam >= ${throughputTarget}x native throughput**: ${worst >= throughputTarget ? 'met' : 'not met'} (lowest ratio ${worst.toFixed(2)}).`,
  ].join('\n');
}

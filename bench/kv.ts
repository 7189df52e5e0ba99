import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Cluster, migrateContainer, startCluster, startOnNode, stopCluster } from '../src/cluster/cluster.js';
import { freePort } from '../test/cluster/cluster.js';
import { median, ms, repoRoot, roamSync, table } from './harness.js';

const throughputTarget = 0.7;
const pauseSlackMs = 5;

/** redis-benchmark requests per second for one test (GET or SET) against `port`. */
export function redisBenchmark(port: number, test: 'get' | 'set', pipeline: number, requests: number): number {
  const run = spawnSync(
    'redis-benchmark',
    ['-p', String(port), '-t', test, '-n', String(requests), '-c', '50', '-P', String(pipeline), '--csv'],
    { encoding: 'utf8', timeout: 300_000 },
  );
  const line = run.stdout.split('\n').find((l) => l.startsWith(`"${test.toUpperCase()}"`));
  if (run.status !== 0 || !line)
    throw new Error(`redis-benchmark ${test} -P ${pipeline} failed: ${run.stderr || run.stdout}`);
  return Number(JSON.parse(`[${line}]`)[1]);
}

/**
 * redis-benchmark SET and GET, pipeline 1 and 16, against a native server and a Roam one, rounds
 * interleaved: a table row per test and the Roam/native ratios.
 */
export function compareThroughput(
  label: string,
  nativePort: number,
  roamPort: number,
  requests: number,
  rounds: number,
): { rows: (string | number)[][]; ratios: number[] } {
  const rows: (string | number)[][] = [];
  const ratios: number[] = [];
  for (const pipeline of [1, 16]) {
    for (const test of ['get', 'set'] as const) {
      const times = { native: [] as number[], roam: [] as number[] };
      for (let round = 0; round < rounds; round++) {
        times.native.push(redisBenchmark(nativePort, test, pipeline, requests));
        times.roam.push(redisBenchmark(roamPort, test, pipeline, requests));
      }
      const [a, b] = [median(times.native), median(times.roam)];
      ratios.push(b / a);
      rows.push([test.toUpperCase(), pipeline, Math.round(a), Math.round(b), (b / a).toFixed(2)]);
      console.error(`${label}: ${test} -P ${pipeline}: native ${Math.round(a)}, roam ${Math.round(b)} requests/s`);
    }
  }
  return { rows, ratios };
}

export async function waitForPort(port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.write('PING\r\n');
        socket.once('data', () => {
          socket.destroy();
          resolve(true);
        });
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing answers PING on port ${port}`);
    await sleep(100);
  }
}

/**
 * One client doing SET/GET round trips back to back while the server migrates: every answer's
 * time, to read the latency percentiles and the longest gap between two answers (the pause).
 */
async function latencyDuringMigration(
  port: number,
  migrate: () => Promise<{ downtimeMs: number }>,
): Promise<{ p50: number; p99: number; max: number; pause: number; downtime: number; requests: number }> {
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve) => socket.once('connect', resolve));
  const latencies: number[] = [];
  let stop = false;
  let pending: (() => void) | undefined;
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    if (buffered.endsWith('\r\n')) {
      buffered = '';
      pending?.();
    }
  });
  const loop = (async () => {
    for (let i = 0; !stop; i++) {
      const started = performance.now();
      const answered = new Promise<void>((resolve) => (pending = resolve));
      socket.write(i % 2 ? `GET k${i % 1000}\r\n` : `SET k${i % 1000} v${i}\r\n`);
      await answered;
      latencies.push(performance.now() - started);
    }
  })();
  await sleep(1000);
  const result = await migrate();
  await sleep(1000);
  stop = true;
  await loop;
  socket.destroy();
  const sorted = [...latencies].sort((a, b) => a - b);
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
  return {
    p50: pct(50),
    p99: pct(99),
    max: sorted[sorted.length - 1]!,
    pause: Math.max(...latencies),
    downtime: result.downtimeMs,
    requests: latencies.length,
  };
}

/**
 * apps/kv under redis-benchmark: built natively with gcc -O2 and run by Roam on x64 (clients
 * through the gateway), side by side; then the latency a client sees while it migrates.
 */
export async function kvBench(work: string, requests: number, rounds: number): Promise<string> {
  mkdirSync(work, { recursive: true });
  const native = join(work, 'kv');
  const wasm = join(work, 'kv.wasm');
  const cc = spawnSync('gcc', ['-O2', ...sourcesOf(join(repoRoot, 'apps', 'kv')), '-o', native], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`gcc apps/kv: ${cc.stderr}`);
  roamSync(['build', ...sourcesOf(join(repoRoot, 'apps', 'kv')), '-O2', '-o', wasm]);
  const saved = process.env.ROAM_CLUSTER_DIR;
  process.env.ROAM_CLUSTER_DIR = join(work, 'cluster');
  const nativePort = await freePort();
  const server = spawn(native, ['--port', String(nativePort)], { stdio: 'ignore' });
  let cluster: Cluster | undefined;
  const rows: (string | number)[][] = [];
  const ratios: number[] = [];
  const latencyRows: (string | number)[][] = [];
  let pauseOk = true;
  try {
    cluster = await startCluster(['x64', 'x64', 'arm64']);
    const roamPort = await freePort();
    const info = await startOnNode(cluster, 'x64', wasm, { args: ['kv'] }, [{ hostPort: roamPort, port: 6379 }]);
    await waitForPort(nativePort);
    await waitForPort(roamPort);
    const compared = compareThroughput('kv', nativePort, roamPort, requests, rounds);
    rows.push(...compared.rows);
    ratios.push(...compared.ratios);
    let where = 'x64';
    for (const to of ['x64-2', 'arm64', 'x64']) {
      const from = where;
      const l = await latencyDuringMigration(roamPort, () =>
        migrateContainer(cluster!, info.id, to, { mode: 'pre-copy' }),
      );
      where = to;
      const ok = l.pause <= l.downtime + pauseSlackMs;
      pauseOk &&= ok;
      latencyRows.push([
        `${from} → ${to}`,
        l.requests,
        ms(l.p50),
        ms(l.p99),
        ms(l.max),
        ms(l.downtime),
        ms(l.pause),
        ok ? 'yes' : 'no',
      ]);
      console.error(
        `kv: migration ${from} -> ${to}: p99 ${ms(l.p99)} ms, max ${ms(l.max)} ms, downtime ${ms(l.downtime)} ms`,
      );
    }
  } finally {
    server.kill();
    if (cluster) await stopCluster(cluster);
    if (saved === undefined) delete process.env.ROAM_CLUSTER_DIR;
    else process.env.ROAM_CLUSTER_DIR = saved;
  }
  const worst = Math.min(...ratios);
  return [
    '### Redis-protocol server (apps/kv): throughput and latency during migration',
    '',
    `redis-benchmark (Debian redis-tools), 50 clients, ${requests} requests per test, median of ${rounds} interleaved rounds; the same C sources built natively with gcc -O2 (listening itself) and with \`roam build\` run by Roam on x64 (clients connect to the gateway, which forwards over the container's tunnel).`,
    '',
    table(['test', 'pipeline', 'native (requests/s)', 'Roam (requests/s)', 'Roam / native'], rows),
    '',
    `**Target: Roam >= ${throughputTarget}x native throughput**: ${worst >= throughputTarget ? 'met' : 'not met'} (lowest ratio ${worst.toFixed(2)}).`,
    '',
    'One client doing SET/GET round trips back to back (one request in flight) for 1 s before, during and 1 s after each pre-copy migration; the pause is the longest single round trip (it contains the whole gap a client sees).',
    '',
    table(
      [
        'migration',
        'requests',
        'p50 (ms)',
        'p99 (ms)',
        'max (ms)',
        'downtime (ms)',
        'client pause (ms)',
        `pause <= downtime + ${pauseSlackMs} ms`,
      ],
      latencyRows,
    ),
    '',
    `**Target: client-visible pause <= downtime + ${pauseSlackMs} ms**: ${pauseOk ? 'met' : 'not met'} in every row above.`,
  ].join('\n');
}

function sourcesOf(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.c'))
    .map((f) => join(dir, f));
}

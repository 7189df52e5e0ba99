import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Cluster, followLogs, startCluster, startOnNode, stopCluster } from '../src/cluster/cluster.js';
import { freePort } from '../test/cluster/cluster.js';
import { SquareServer, serverAddress } from '../test/cluster/square-server.js';
import { median, repoRoot, roamSync, table } from './harness.js';

const run = promisify(execFile);
/** What the client prints last: the mean round trip of its exchanges. */
const roundTrip = (output: string) => {
  const match = /round trip ([\d.]+) us/.exec(output);
  if (!match) throw new Error(`outbound printed no round trip:\n${output}`);
  return Number(match[1]);
};

/**
 * An outgoing connection's round trip: the same client (test/fixtures/outbound.c, one line out,
 * one line back, `exchanges` times on one connection) built with gcc -O2 and run natively, and
 * built with roam build -O2 and run by Roam on x64, where the gateway makes and holds the real
 * connection; one line server outside Roam answers both, rounds interleaved.
 */
export async function outboundBench(work: string, exchanges: number, rounds: number): Promise<string> {
  const title = '## Outgoing connections: round trip through the gateway';
  if (!serverAddress) return `${title}\n\nNot measured: this machine has no IPv4 address besides loopback.`;
  mkdirSync(work, { recursive: true });
  const source = join(repoRoot, 'test', 'fixtures', 'outbound.c');
  const native = join(work, 'outbound');
  const module = join(work, 'outbound.wasm');
  const cc = spawnSync('gcc', ['-O2', source, '-o', native], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`gcc outbound.c: ${cc.stderr}`);
  roamSync(['build', source, '-O2', '-o', module]);
  const server = new SquareServer();
  const port = await freePort();
  await server.listen(port);
  const args = [serverAddress, String(port), String(exchanges), '0', 'timed'];
  const saved = process.env.ROAM_CLUSTER_DIR;
  process.env.ROAM_CLUSTER_DIR = join(work, 'cluster');
  let cluster: Cluster | undefined;
  const times = { native: [] as number[], roam: [] as number[] };
  try {
    cluster = await startCluster(['x64']);
    for (let round = 0; round < rounds; round++) {
      times.native.push(roundTrip((await run(native, args)).stdout));
      const info = await startOnNode(cluster, 'x64', module, { args: ['outbound', ...args] });
      let output = '';
      await followLogs(cluster, info.id, true, (chunk) => {
        output += chunk.toString();
      });
      times.roam.push(roundTrip(output));
      console.error(`outbound: round ${round + 1}: native ${times.native.at(-1)} us, roam ${times.roam.at(-1)} us`);
    }
  } finally {
    server.close();
    if (cluster) await stopCluster(cluster);
    if (saved === undefined) delete process.env.ROAM_CLUSTER_DIR;
    else process.env.ROAM_CLUSTER_DIR = saved;
  }
  const [a, b] = [median(times.native), median(times.roam)];
  return [
    title,
    '',
    `test/fixtures/outbound.c sends a line and reads the answer ${exchanges} times on one TCP connection to a line server outside Roam (Node, on this machine's non-loopback address), median of ${rounds} runs. Natively the client talks to the server; under Roam its connect() goes through the container's tunnel to the gateway, which makes the real connection (so the server sees one client wherever the guest moves): two more hops each way.`,
    '',
    table(
      ['client', 'round trip (µs)', 'vs native'],
      [
        ['native (gcc -O2)', a.toFixed(1), '1.00'],
        ['Roam on x64, through the gateway', b.toFixed(1), (b / a).toFixed(2)],
      ],
    ),
    '',
    `Overhead of the gateway path: ${(b - a).toFixed(1)} µs per round trip.`,
  ].join('\n');
}

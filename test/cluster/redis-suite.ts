import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { buildProgram, programsDir } from '../programs/programs.js';
import { freePort, TestCluster } from './cluster.js';
import { haveRedisTools, startRedis, waitForPong } from './redis-server.js';

/** The suite needs Tcl 8.6 (runtest looks for tclsh8.6) and Debian's redis-cli. */
export const haveSuiteTools =
  haveRedisTools && spawnSync('sh', ['-c', 'command -v tclsh8.6'], { stdio: 'ignore' }).status === 0;

/**
 * What the suite is told to leave out (docs/redis.md). Against a server that cannot fork: the
 * stream units turn AOF on in an override (its failure ends the test client), DEBUG LOADAOF after
 * a failed AOF start makes Redis exit, the named tests need BGSAVE, an AOF rewrite or a
 * replication stream (SYNC). Against a container: "CONFIG SET rollback on apply error" occupies a
 * port on the test's host and expects Redis's bind to it to fail, but a container's ports are its
 * own (as in a network namespace).
 */
const exclusions = [
  ['--tags', '-slow -needs:repl'],
  ['--skipunit', 'unit/type/stream'],
  ['--skipunit', 'unit/type/stream-cgroups'],
  ['--skiptest', '/loadaof'],
  ['--skiptest', 'BGSAVE'],
  ['--skiptest', '/AOF reload|saving/reloading as AOF|append only file rewrite'],
  ['--skiptest', '/SWAPDB wants to wake blocked client, but the key already expired'],
  ['--skiptest', '/MULTI \\+ LPUSH \\+ EXPIRE \\+ DEBUG SLEEP on blocked client'],
  ['--skiptest', '/Lazy-expire should not be wrapped in MULTI/EXEC'],
  ['--skiptest', 'CONFIG SET rollback on apply error'],
].flat();

export interface SuiteResult {
  status: number | null;
  passed: number;
  /** Names of the tests that failed ([err] and [exception] lines). */
  failed: string[];
  /** Tests the suite itself left out (tags, external:skip) or was told to skip. */
  skipped: number;
  seconds: number;
  /** The suite's whole output, for the failure message. */
  log: string;
}

/**
 * Runs Redis's own test suite (`./runtest --host --port`, Debian's tclsh and redis-cli) against
 * Redis in a fresh one-node cluster under `dir`: `units` (`unit/type/string`...) or all of them.
 * A fresh server each time: the suite leaves configuration behind.
 */
export async function runRedisSuite(dir: string, units: string[] | 'all', timeoutMs: number): Promise<SuiteResult> {
  const redis = buildProgram('redis');
  const suite = join(dir, 'suite');
  cpSync(join(programsDir, 'redis-suite'), suite, { recursive: true });
  // The suite runs src/redis-cli and src/redis-benchmark of its tree: Debian's (redis-tools).
  mkdirSync(join(suite, 'src'));
  for (const tool of ['redis-cli', 'redis-benchmark']) symlinkSync(`/usr/bin/${tool}`, join(suite, 'src', tool));
  const cluster = new TestCluster(join(dir, 'cluster'));
  try {
    cluster.up('x64');
    const port = await freePort();
    startRedis(cluster, redis, 'x64', port, join(dir, 'data'));
    await waitForPong(port);
    const selection = units === 'all' ? [] : units.flatMap((unit) => ['--single', unit]);
    const started = Date.now();
    const run = spawnSync(
      './runtest',
      ['--host', '127.0.0.1', '--port', String(port), '--durable', ...exclusions, ...selection],
      // TERM other than xterm*: no colour codes around the [ok]/[err] tags.
      { cwd: suite, env: { ...process.env, TERM: 'dumb' }, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 256 << 20 },
    );
    const log = `${run.stdout}${run.stderr}${run.error ? `\n${run.error.message}` : ''}`;
    const lines = log.split('\n');
    const count = (tag: string) => lines.filter((l) => l.startsWith(`[${tag}]:`)).length;
    return {
      status: run.status,
      passed: count('ok'),
      failed: lines.filter((l) => /^\[(err|exception)\]:/.test(l)),
      skipped: count('ignore') + count('skip'),
      seconds: (Date.now() - started) / 1000,
      log,
    };
  } finally {
    cluster.down();
  }
}

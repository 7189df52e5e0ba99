import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { repoRoot, roam, skipIfMissing, sleep, tempDir } from '../helpers.js';
import { freePort, TestCluster } from './cluster.js';
import { CheckingClient } from './resp-client.js';

const { dir, cleanup } = tempDir();
after(cleanup);
const haveRedisTools = spawnSync('redis-benchmark', ['--version']).status === 0;

test('apps/kv under redis-benchmark and a checking client migrates x64 -> arm64 -> x64 twice: no error, no disconnect, no key lost', {
  skip: skipIfMissing(!haveRedisTools && 'redis-tools is not installed (scripts/setup installs it)'),
  timeout: 10 * 60_000,
}, async () => {
  const kv = join(dir, 'kv.wasm');
  const sources = readdirSync(join(repoRoot, 'apps', 'kv'))
    .filter((f) => f.endsWith('.c'))
    .map((f) => join(repoRoot, 'apps', 'kv', f));
  const built = roam(['build', ...sources, '-O2', '-o', kv]);
  assert.equal(built.status, 0, built.stderr);
  const cluster = new TestCluster(join(dir, 'cluster'));
  try {
    cluster.up('x64,arm64');
    const port = await freePort();
    const id = cluster.run('x64', ['-p', `${port}:6379`, kv]);
    const checker = new CheckingClient(port);
    assert.equal(await checker.command('PING'), '+PONG');

    // Load: redis-benchmark runs again and again until the migrations are over.
    let migrating = true;
    const benchmarks: { status: number | null; output: string }[] = [];
    const load = (async () => {
      while (migrating) {
        const run = spawn(
          'redis-benchmark',
          ['-p', String(port), '-t', 'set,get,incr,lpush', '-n', '4000', '-c', '50', '-q'],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let output = '';
        run.stdout.on('data', (d: Buffer) => (output += d.toString()));
        run.stderr.on('data', (d: Buffer) => (output += d.toString()));
        const status = await new Promise<number | null>((resolve) => run.on('close', resolve));
        benchmarks.push({ status, output });
      }
    })();
    // The checker writes keys all along and verifies them at the end.
    let written = 0;
    const errors: string[] = [];
    const writes = (async () => {
      while (migrating) {
        const reply = await checker.command('SET', `check:${written}`, `value-${written}-${'x'.repeat(written % 100)}`);
        if (reply !== '+OK') errors.push(`SET check:${written} -> ${reply}`);
        written++;
      }
    })();
    await sleep(1000);
    // A client that connects in the middle of a migration is served once it completes.
    let late: Promise<string> | undefined;
    for (const to of ['arm64', 'x64', 'arm64', 'x64']) {
      const migration = cluster.okAsync(['migrate', id, '--to', to]);
      if (!late) {
        await sleep(30);
        const lateClient = new CheckingClient(port);
        late = lateClient
          .command('SET', 'late', 'served')
          .then(async (r) => `${r} ${await lateClient.command('GET', 'late')}`);
      }
      assert.match(await migration, new RegExp(`to ${to} .*downtime`));
      await sleep(1500);
    }
    migrating = false;
    await Promise.all([load, writes]);
    assert.equal(await late, '+OK served', 'the client that connected mid-migration was served');
    assert.deepEqual(errors, []);
    for (let i = 0; i < written; i++) {
      assert.equal(
        await checker.command('GET', `check:${i}`),
        `value-${i}-${'x'.repeat(i % 100)}`,
        `check:${i} intact`,
      );
    }
    assert.equal(checker.closed, false, 'the checking client was never disconnected');
    assert.ok(
      benchmarks.length > 0 && written > 100,
      `load ran (${benchmarks.length} redis-benchmark runs, ${written} checked keys)`,
    );
    for (const b of benchmarks) {
      assert.equal(b.status, 0, b.output);
      assert.doesNotMatch(b.output, /error|closed/i, b.output);
    }
    assert.equal(cluster.where(id).node, 'x64');
    checker.end();
  } finally {
    cluster.down();
  }
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { skipIfMissing, sleep, tempDir } from '../helpers.js';
import { type BuiltProgram, buildProgram } from '../programs/programs.js';
import { freePort, TestCluster } from './cluster.js';
import { cli, haveRedisTools, startRedis, waitForPong } from './redis-server.js';
import { CheckingClient } from './resp-client.js';

// Debian 12's Redis, unchanged (recipes/redis), as a Roam container behind the gateway.
const { dir, cleanup } = tempDir();
after(cleanup);
const skip = skipIfMissing(!haveRedisTools && 'redis-tools is not installed (scripts/setup installs it)');
let redis: BuiltProgram;

before(() => {
  if (!skip) redis = buildProgram('redis');
});

test('Redis, unchanged: answers redis-cli, SAVE writes dump.rdb where it moves with the container, BGSAVE fails with its own error', {
  skip,
  timeout: 15 * 60_000,
}, async () => {
  const cluster = new TestCluster(join(dir, 'cluster-save'));
  try {
    cluster.up('x64');
    const port = await freePort();
    const data = join(dir, 'save-data');
    startRedis(cluster, redis, 'x64', port, data);
    await waitForPong(port);
    assert.match(cli(port, 'INFO', 'server'), /os:WASI preview1 wasm32/);
    assert.equal(cli(port, 'SET', 'greeting', 'hello from wasm'), 'OK');
    assert.equal(cli(port, 'GET', 'greeting'), 'hello from wasm');
    assert.equal(cli(port, 'SAVE'), 'OK');
    assert.ok(existsSync(join(data, 'dump.rdb')), 'dump.rdb in the preopened directory');
    // fork() fails cleanly (ENOSYS): Redis answers with its own error and goes on serving.
    assert.equal(cli(port, 'BGSAVE'), 'ERR');
    assert.equal(cli(port, 'GET', 'greeting'), 'hello from wasm');
  } finally {
    cluster.down();
  }
});

test('Redis under redis-benchmark migrates x64 -> arm64 -> ppc64le -> s390x -> x64: no client error, every key intact', {
  skip,
  timeout: 30 * 60_000,
}, async (t) => {
  const cluster = new TestCluster(join(dir, 'cluster-hops'));
  try {
    cluster.up('x64,arm64,ppc64le,s390x');
    const port = await freePort();
    const id = startRedis(cluster, redis, 'x64', port, join(dir, 'hops-data'));
    await waitForPong(port);

    // A deterministic data set in db 0, its digest taken before any load.
    const loader = new CheckingClient(port);
    for (let i = 0; i < 2000; i++) {
      assert.equal(await loader.command('SET', `data:${i}`, `${i}:${'v'.repeat(i % 50)}`), '+OK');
      if (i % 10 === 0)
        assert.equal(await loader.command('RPUSH', `list:${i % 7}`, `${i}`), `:${Math.floor(i / 70) + 1}`);
    }
    const digest = await loader.command('DEBUG', 'DIGEST');
    loader.end();

    // Load in db 1: redis-benchmark again and again until the hops are over.
    let migrating = true;
    const benchmarks: { status: number | null; output: string }[] = [];
    const tests = 'set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100';
    const load = (async () => {
      while (migrating) {
        const run = spawn(
          'redis-benchmark',
          ['-p', String(port), '--dbnum', '1', '-t', tests, '-n', '300', '-c', '50', '-q'],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let output = '';
        run.stdout.on('data', (d: Buffer) => (output += d.toString()));
        run.stderr.on('data', (d: Buffer) => (output += d.toString()));
        benchmarks.push({ status: await new Promise<number | null>((resolve) => run.on('close', resolve)), output });
      }
    })();
    // A client in db 2 writes and checks keys all along; its longest wait for an answer per hop is the pause.
    const checker = new CheckingClient(port);
    assert.equal(await checker.command('SELECT', '2'), '+OK');
    let written = 0;
    let longest = 0;
    const errors: string[] = [];
    const writes = (async () => {
      while (migrating) {
        const sent = performance.now();
        const reply = await checker.command('SET', `check:${written}`, `value-${written}`);
        longest = Math.max(longest, performance.now() - sent);
        if (reply !== '+OK') errors.push(`SET check:${written} -> ${reply}`);
        written++;
      }
    })();

    await sleep(2000);
    for (const to of ['arm64', 'ppc64le', 's390x', 'x64']) {
      longest = 0;
      const migrated = await cluster.okAsync(['migrate', id, '--to', to]);
      assert.match(migrated, new RegExp(`to ${to} .*downtime`));
      await sleep(3000);
      t.diagnostic(`hop to ${to}: ${migrated.trim().split('\n').at(-1)}; longest client wait ${longest.toFixed(0)} ms`);
    }
    migrating = false;
    await Promise.all([load, writes]);

    assert.deepEqual(errors, []);
    for (let i = 0; i < written; i++) assert.equal(await checker.command('GET', `check:${i}`), `value-${i}`);
    assert.equal(checker.closed, false, 'the checking client was never disconnected');
    assert.ok(benchmarks.length > 0 && written > 50, `load ran (${benchmarks.length} runs, ${written} checked keys)`);
    for (const b of benchmarks) {
      assert.equal(b.status, 0, b.output);
      assert.doesNotMatch(b.output, /error|closed/i, b.output);
    }
    // The data set is intact: with the load's databases emptied, the digest is the one from before.
    for (const db of ['1', '2']) {
      assert.equal(await checker.command('SELECT', db), '+OK');
      assert.equal(await checker.command('FLUSHDB'), '+OK');
    }
    assert.equal(await checker.command('DEBUG', 'DIGEST'), digest);
    assert.equal(cluster.where(id).node, 'x64');
    checker.end();
  } finally {
    cluster.down();
  }
});

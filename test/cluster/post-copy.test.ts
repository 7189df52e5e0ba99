import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { lazyRestoreSupport } from '../../src/migrate/post-copy.js';
import { buildFixture, buildNative, fixtures, roamInBackground, skipIfMissing, sleep, tempDir } from '../helpers.js';
import { TestCluster } from './cluster.js';

const support = lazyRestoreSupport();
const skip = skipIfMissing(support.ok ? false : `post-copy unavailable here: ${support.reason}`);
const { dir, cleanup } = tempDir();
/** 160 MiB of words read and rewritten at random, summed after each round. */
const args = ['160', '80', '1000000'];
let module = '';
let expected = '';

before(() => {
  if (skip) return;
  module = buildFixture('scramble', dir).roam;
  expected = execFileSync(buildNative(join(fixtures, 'scramble.c'), dir), args, { encoding: 'utf8' });
});
after(cleanup);

/** Starts scramble on x64 and waits until it is past its set-up and a round. */
async function startScramble(cluster: TestCluster): Promise<string> {
  const id = cluster.run('x64', ['--argv0', 'scramble', module, '--', ...args]);
  for (let i = 0; i < 600 && !cluster.ok(['logs', id]).includes('round 1:'); i++) await sleep(50);
  return id;
}

test('post-copy and pre-post move a guest that reads and writes all over its memory: output identical to a native run', {
  skip,
  timeout: 300_000,
}, async () => {
  const cluster = new TestCluster(join(dir, 'modes'));
  try {
    cluster.up('x64,x64,arm64');
    const nodes = JSON.parse(cluster.ok(['nodes', '--json'])) as {
      name: string;
      capabilities: { postCopy: boolean; postCopyNote?: string };
    }[];
    assert.equal(nodes.find((n) => n.name === 'x64-2')!.capabilities.postCopy, true);
    const arm64 = nodes.find((n) => n.name === 'arm64')!.capabilities;
    assert.equal(arm64.postCopy, false, 'qemu-user has no userfaultfd');

    const id = await startScramble(cluster);
    const refused = cluster.roam(['migrate', id, '--to', 'arm64', '--mode', 'post-copy']);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /node arm64 cannot receive post-copy: .*use --mode pre-copy/);

    const there = JSON.parse(cluster.ok(['migrate', id, '--to', 'x64-2', '--mode', 'post-copy', '--json'])) as {
      mode: string;
      downtimeMs: number;
      postCopy: { missingBytes: number; requestedBytes: number; pushedBytes: number; faults: number };
    };
    assert.equal(there.mode, 'post-copy');
    assert.ok(there.postCopy.missingBytes >= 160 << 20, 'all of memory followed the guest');
    assert.ok(there.postCopy.faults > 0, 'the guest faulted on pages it needed before they were pushed');
    assert.equal(
      there.postCopy.requestedBytes + there.postCopy.pushedBytes,
      there.postCopy.missingBytes,
      'every missing granule sent once',
    );

    const back = JSON.parse(cluster.ok(['migrate', id, '--to', 'x64', '--mode', 'pre-post', '--json'])) as {
      mode: string;
      rounds: unknown[];
      postCopy: { missingBytes: number };
    };
    assert.equal(back.mode, 'pre-post');
    assert.equal(back.rounds.length, 1, 'one pre-copy round');
    // This guest rewrites words all over its memory every round: nearly every page is dirty again.
    assert.ok(
      back.postCopy.missingBytes > 0 && back.postCopy.missingBytes <= 161 << 20,
      'what the guest wrote since that round followed',
    );

    const auto = JSON.parse(cluster.ok(['migrate', id, '--to', 'x64-2', '--json'])) as { mode: string };
    assert.equal(auto.mode, 'pre-post', 'auto: a large guest and a destination with userfaultfd');

    assert.equal(cluster.ok(['logs', '-f', id]), expected);
    assert.equal(cluster.where(id).node, 'x64-2');
    assert.equal(cluster.where(id).status, 'exited');
  } finally {
    cluster.down();
  }
});

test('post-copy: memory the guest grows while the migration is set up follows it too', {
  skip,
  timeout: 120_000,
}, async () => {
  const growArgs = ['3000', '100']; // ~190 MiB, a 64 KiB block per millisecond or so
  const grow = buildFixture('grow', dir).roam;
  const growExpected = execFileSync(buildNative(join(fixtures, 'grow.c'), dir), growArgs, { encoding: 'utf8' });
  const cluster = new TestCluster(join(dir, 'grow'));
  try {
    cluster.up('x64,x64');
    const id = cluster.run('x64', ['--argv0', 'grow', grow, '--', ...growArgs]);
    for (let i = 0; i < 600 && !cluster.ok(['logs', id]).includes('100 blocks'); i++) await sleep(50);
    const moved = JSON.parse(cluster.ok(['migrate', id, '--to', 'x64-2', '--mode', 'post-copy', '--json'])) as {
      memoryBytes: number;
      rounds: { bytes: number }[];
      postCopy: { missingBytes: number };
    };
    // Lazily restored: the memory announced before the stop; the rest went as a last round.
    assert.equal(moved.rounds.length, 1, 'the guest grew between the set-up and the stop');
    assert.ok(moved.rounds[0]!.bytes > 0);
    assert.equal(moved.postCopy.missingBytes + moved.rounds[0]!.bytes, moved.memoryBytes);
    assert.equal(cluster.ok(['logs', '-f', id]), growExpected);
    assert.equal(cluster.where(id).node, 'x64-2');
  } finally {
    cluster.down();
  }
});

test('roam stop during post-copy stops the copies on both nodes: the source does not resume', {
  skip,
  timeout: 120_000,
}, async () => {
  const sleeper = buildFixture('sleep', dir).roam;
  // Without pushes, post-copy lasts while the sleeping guest leaves its pages untouched.
  const cluster = new TestCluster(join(dir, 'stop'), { ROAM_FAILPOINT: 'source-push-held' });
  try {
    cluster.up('x64,x64');
    const id = cluster.run('x64', [sleeper, '--', '60000']);
    const migration = roamInBackground(['migrate', id, '--to', 'x64-2', '--mode', 'post-copy'], {
      env: cluster.env,
    }).done;
    const copies = () =>
      (JSON.parse(cluster.ok(['ps', '--all', '--json'])) as { id: string; node: string; status: string }[]).filter(
        (c) => c.id === id,
      );
    for (let i = 0; i < 200 && !copies().some((c) => c.node === 'x64-2' && c.status === 'running'); i++)
      await sleep(50);
    assert.deepEqual(
      copies()
        .map((c) => [c.node, c.status])
        .sort(),
      [
        ['x64', 'migrating'],
        ['x64-2', 'running'],
      ],
      'in post-copy',
    );

    assert.equal(cluster.ok(['stop', id]), `stopped ${id} on x64-2 and x64\n`);
    assert.equal((await migration).status, 1, 'the migration did not complete');
    await sleep(500);
    assert.deepEqual(
      copies()
        .map((c) => [c.node, c.status])
        .sort(),
      [
        ['x64', 'stopped'],
        ['x64-2', 'stopped'],
      ],
    );
  } finally {
    cluster.down();
  }
});

test('post-copy: a destination that dies mid-way leaves the guest running on the source from its own copy, nothing lost', {
  skip,
  timeout: 300_000,
}, async () => {
  const cluster = new TestCluster(join(dir, 'destination-dies'), { ROAM_FAILPOINT: 'destination-post-copy' });
  try {
    cluster.up('x64,x64');
    const id = await startScramble(cluster);
    const migration = cluster.roam(['migrate', id, '--to', 'x64-2', '--mode', 'post-copy']);
    assert.equal(migration.status, 1);
    assert.match(
      migration.stderr,
      /keeps running here from its copy as of the stop .*the destination was lost during post-copy/,
    );
    assert.equal(cluster.where(id).node, 'x64');
    assert.equal(cluster.ok(['logs', '-f', id]), expected, 'the output is that of an uninterrupted run');
  } finally {
    cluster.down();
  }
});

test('post-copy: a source that dies mid-way leaves the container failed at the destination with a clear error', {
  skip,
  timeout: 300_000,
}, async () => {
  const cluster = new TestCluster(join(dir, 'source-dies'), { ROAM_FAILPOINT: 'source-post-copy' });
  try {
    cluster.up('x64,x64');
    const id = await startScramble(cluster);
    const migration = cluster.roam(['migrate', id, '--to', 'x64-2', '--mode', 'post-copy']);
    assert.equal(migration.status, 1, 'the source agent died during the migration');
    let status = '';
    for (let i = 0; i < 100 && status !== 'failed'; i++, await sleep(100)) {
      const list = JSON.parse(cluster.ok(['ps', '--all', '--json'])) as {
        id: string;
        node: string;
        status: string;
        error?: string;
      }[];
      const copy = list.find((c) => c.id === id && c.node === 'x64-2');
      status = copy?.status ?? '';
      if (status === 'failed')
        assert.match(
          copy!.error ?? '',
          /the source was lost during post-copy, with part of the memory still there: the container cannot go on/,
        );
    }
    assert.equal(status, 'failed');
  } finally {
    cluster.down();
  }
});

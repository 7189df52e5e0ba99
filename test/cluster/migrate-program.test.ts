import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { sleep, tempDir } from '../helpers.js';
import { buildProgram, programs, runNative } from '../programs/programs.js';
import { TestCluster } from './cluster.js';

const { dir, cleanup } = tempDir();
after(cleanup);

/**
 * A real program (SQLite's shell running 100k inserts and queries from a script file into a
 * database in its preopened directory) is live-migrated around the ISAs while it writes its
 * database and prints results. Its log and database must equal an uninterrupted native run.
 */
test('SQLite migrated live x64 -> arm64 -> ppc64le -> s390x -> x64 writes the same log and database as a native run', {
  timeout: 15 * 60_000,
}, async () => {
  const sqlite = programs.find((p) => p.name === 'sqlite')!;
  const built = buildProgram('sqlite');
  const reference = join(dir, 'native');
  mkdirSync(reference);
  const workload = sqlite.prepare(reference);
  const expected = runNative(built, reference, workload);
  assert.equal(expected.status, 0, expected.stderr);
  assert.equal(expected.stderr, '', 'the workload writes to stdout only (the log merges both)');

  const work = join(dir, 'work');
  mkdirSync(work);
  sqlite.prepare(work);
  const cluster = new TestCluster(join(dir, 'cluster'));
  try {
    cluster.up('x64,arm64,ppc64le,s390x');
    const id = cluster.run('x64', ['--dir', `${work}:.`, '--env', 'HOME=.', built.migratable, '--', ...workload.args]);
    const route = ['arm64', 'ppc64le', 's390x', 'x64'];
    for (const [i, node] of route.entries()) {
      await sleep(i === 0 ? 1500 : 500);
      assert.equal(cluster.where(id).status, 'running', `still running before the move to ${node}`);
      const moved = cluster.ok(['migrate', id, '--to', node, '--mode', 'pre-copy']);
      assert.match(moved, new RegExp(`to ${node} \\(pre-copy, \\d+ rounds, .*downtime [0-9.]+ ms`));
    }
    const log = cluster.ok(['logs', '-f', id]);
    assert.equal(log, expected.stdout.toString(), 'the log continues across every hop exactly');
    const final = cluster.where(id);
    assert.deepEqual([final.node, final.status], ['x64', 'exited']);
    const db = join(final.dirs[0]!.hostPath, 't.db');
    assert.ok(
      readFileSync(db).equals(readFileSync(join(reference, 't.db'))),
      't.db is byte-identical to the native one',
    );
  } finally {
    cluster.down();
  }
});

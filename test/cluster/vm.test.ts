import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { cacheDir } from '../../src/platform/paths.js';
import {
  buildFixture,
  buildNative,
  fixtures,
  roam,
  roamInBackground,
  skipIfMissing,
  sleep,
  tempDir,
} from '../helpers.js';
import { primesSource, TestCluster } from './cluster.js';

const { dir, cleanup } = tempDir();
after(cleanup);
/** 256 MiB read and rewritten all over: its post-copy to the VM takes seconds, time to kill it. */
const scrambleArgs = ['256', '120', '1000000'];

// The VM tier is optional (scripts/setup builds its image, but may fail to): its end-to-end test
// runs where the image was built.
const vmMissing = !existsSync(join(cacheDir('vm', 'arm64'), 'initrd'))
  ? 'no arm64 VM image (scripts/vm-image)'
  : spawnSync('qemu-system-aarch64', ['--version']).error
    ? 'qemu-system-aarch64 missing'
    : false;

test('roam up --vm accepts only arm64 and says how to get the image', { timeout: 60_000 }, () => {
  const cluster = new TestCluster(join(dir, 'errors'), { ROAM_CACHE: join(dir, 'empty-cache') });
  assert.match(
    cluster.roam(['up', '--isa', 'x64', '--vm', 'x64']).stderr,
    /--vm x64: only arm64 can run as a full-system VM/,
  );
  const missing = cluster.roam(['up', '--isa', 'x64', '--vm', 'arm64']);
  assert.notEqual(missing.status, 0);
  assert.match(
    missing.stderr,
    /(no arm64 VM image in .*|qemu-system-aarch64 not found .*): run scripts\/vm-image first/,
  );
  assert.match(cluster.roam(['nodes']).stderr, /no cluster is up/);
});

test('an arm64 VM node: real kernel facts, containers move x64 <-> arm64-vm (post-copy there), a VM killed mid post-copy loses nothing', {
  timeout: 600_000,
  skip: skipIfMissing(vmMissing),
}, async () => {
  const module = join(dir, 'primes.wasm');
  assert.equal(roam(['build', primesSource, '-O2', '-o', module]).status, 0);
  // ~20 s under Roam on x64: it must outlast the trip there and back, whose set-up in the VM
  // (a container process started under TCG) alone took 4-8 s.
  const args = ['24000000', '100000'];
  const primesExpected = promisify(execFile)(buildNative(primesSource, dir), args, { encoding: 'utf8' }); // in parallel with the VM's boot
  const scramble = buildFixture('scramble', dir).roam;
  const scrambleExpected = execFileSync(buildNative(join(fixtures, 'scramble.c'), dir), scrambleArgs, {
    encoding: 'utf8',
  });

  const cluster = new TestCluster(join(dir, 'vm'));
  try {
    cluster.ok(['up', '--isa', 'x64', '--vm', 'arm64']);
    const nodes = JSON.parse(cluster.ok(['nodes', '--json'])) as {
      name: string;
      isa: string;
      emulated: boolean;
      vm?: string;
      capabilities: { postCopy: boolean };
    }[];
    const vm = nodes.find((n) => n.name === 'arm64-vm');
    assert.ok(vm, 'arm64-vm is listed');
    assert.equal(vm.isa, 'arm64');
    assert.equal(vm.emulated, true, 'TCG: emulated, though a real kernel');
    assert.equal(vm.vm, 'qemu-system-aarch64');
    assert.equal(vm.capabilities.postCopy, true, 'userfaultfd and the arm64 addon work in the VM');
    const state = JSON.parse(readFileSync(join(dir, 'vm', 'cluster.json'), 'utf8')) as {
      nodes: { name: string; vm?: { log: string } }[];
    };
    assert.match(
      readFileSync(state.nodes.find((n) => n.name === 'arm64-vm')!.vm!.log, 'utf8'),
      /kernel 6\.\d+\.\S+-arm64 aarch64/,
    );

    const id = cluster.run('x64', [module, '--', ...args]);
    await sleep(500);
    cluster.ok(['migrate', id, '--to', 'arm64-vm', '--mode', 'post-copy']);
    assert.equal(cluster.where(id).node, 'arm64-vm');
    await sleep(1000);
    cluster.ok(['migrate', id, '--to', 'x64', '--mode', 'pre-copy']);
    assert.equal(await cluster.okAsync(['logs', '-f', id]), (await primesExpected).stdout);

    // The destination dies mid-way through post-copy (its VM is killed): the guest goes on at the
    // source from its own copy, and its output is still that of an uninterrupted run.
    const big = cluster.run('x64', ['--argv0', 'scramble', scramble, '--', ...scrambleArgs]);
    for (let i = 0; i < 600 && !cluster.ok(['logs', big]).includes('round 1:'); i++) await sleep(50);
    const migration = roamInBackground(['migrate', big, '--to', 'arm64-vm', '--mode', 'post-copy'], {
      env: cluster.env,
    }).done;
    await untilPostCopy(cluster, big);
    process.kill(vmPid(), 'SIGKILL');
    const failed = await migration;
    assert.equal(failed.status, 1);
    assert.match(
      failed.stderr,
      /keeps running here from its copy as of the stop .*the destination was lost during post-copy/,
    );
    assert.equal(cluster.where(big).node, 'x64');
    assert.equal(await cluster.okAsync(['logs', '-f', big]), scrambleExpected);
  } finally {
    cluster.down();
  }
  assert.throws(() => process.kill(vmPid(), 0), 'qemu is gone after roam down');
});

function vmPid(): number {
  try {
    return Number(readFileSync(join(dir, 'vm', 'nodes', 'arm64-vm', 'qemu.pid'), 'utf8'));
  } catch {
    return 0;
  }
}

/** Waits until the guest runs at arm64-vm while the source still holds it: post-copy is under way. */
async function untilPostCopy(cluster: TestCluster, id: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const list = JSON.parse(cluster.ok(['ps', '--all', '--json'])) as { id: string; node: string; status: string }[];
    const copies = list.filter((c) => c.id === id);
    if (
      copies.some((c) => c.node === 'arm64-vm' && c.status === 'running') &&
      copies.some((c) => c.node === 'x64' && c.status === 'migrating')
    )
      return;
    assert.ok(
      copies.some((c) => c.status === 'running' || c.status === 'migrating'),
      `the guest ended before post-copy began: ${JSON.stringify(copies)}`,
    );
    await sleep(50);
  }
  assert.fail('post-copy to arm64-vm never began');
}

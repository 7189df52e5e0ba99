import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cacheDir } from '../../src/platform/paths.js';
import { roam, sleep, tempDir } from '../helpers.js';
import { TestCluster, primesSource } from './cluster.js';

const { dir, cleanup } = tempDir();
after(cleanup);

// The VM tier is optional (scripts/vm-image is not part of scripts/setup): its end-to-end test
// runs where the image was built.
const vmMissing = !existsSync(join(cacheDir('vm', 'arm64'), 'initrd'))
  ? 'no arm64 VM image (scripts/vm-image)'
  : spawnSync('qemu-system-aarch64', ['--version']).error
    ? 'qemu-system-aarch64 missing'
    : false;

test('roam up --vm accepts only arm64 and says how to get the image', { timeout: 60_000 }, () => {
  const cluster = new TestCluster(join(dir, 'errors'), { ROAM_CACHE: join(dir, 'empty-cache') });
  assert.match(cluster.roam(['up', '--isa', 'x64', '--vm', 'x64']).stderr, /--vm x64: only arm64 can run as a full-system VM/);
  const missing = cluster.roam(['up', '--isa', 'x64', '--vm', 'arm64']);
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /(no arm64 VM image in .*|qemu-system-aarch64 not found .*): run scripts\/vm-image first/);
  assert.match(cluster.roam(['nodes']).stderr, /no cluster is up/);
});

test('an arm64 VM node: real kernel facts, a program runs there, containers move x64 <-> arm64-vm', { timeout: 600_000, skip: vmMissing }, async () => {
  const module = join(dir, 'primes.wasm');
  assert.equal(roam(['build', primesSource, '-O2', '-o', module]).status, 0);
  const args = ['12000000', '100000']; // ~7 s on x64: long enough to move it there and back
  const direct = roam(['run', '--argv0', 'primes.wasm', module, '--', ...args]);
  assert.equal(direct.status, 0, direct.stderr);

  const cluster = new TestCluster(join(dir, 'vm'));
  try {
    cluster.ok(['up', '--isa', 'x64', '--vm', 'arm64']);
    const nodes = JSON.parse(cluster.ok(['nodes', '--json'])) as { name: string; isa: string; emulated: boolean; vm?: string; capabilities: { postCopy: boolean } }[];
    const vm = nodes.find((n) => n.name === 'arm64-vm');
    assert.ok(vm, 'arm64-vm is listed');
    assert.equal(vm.isa, 'arm64');
    assert.equal(vm.emulated, false);
    assert.equal(vm.vm, 'qemu-system-aarch64');
    assert.equal(vm.capabilities.postCopy, true, 'userfaultfd and the arm64 addon work in the VM');
    const state = JSON.parse(readFileSync(join(dir, 'vm', 'cluster.json'), 'utf8')) as { nodes: { name: string; vm?: { log: string } }[] };
    assert.match(readFileSync(state.nodes.find((n) => n.name === 'arm64-vm')!.vm!.log, 'utf8'), /kernel 6\.\d+\.\S+-arm64 aarch64/);

    const id = cluster.run('x64', [module, '--', ...args]);
    await sleep(500);
    cluster.ok(['migrate', id, '--to', 'arm64-vm', '--mode', 'post-copy']);
    assert.equal(cluster.where(id).node, 'arm64-vm');
    await sleep(1000);
    cluster.ok(['migrate', id, '--to', 'x64', '--mode', 'pre-copy']);
    assert.equal(await cluster.okAsync(['logs', '-f', id]), direct.stdout);
  } finally {
    cluster.down();
  }
  const pid = (() => {
    try {
      return Number(readFileSync(join(dir, 'vm', 'nodes', 'arm64-vm', 'qemu.pid'), 'utf8'));
    } catch {
      return 0;
    }
  })();
  assert.throws(() => process.kill(pid, 0), 'qemu is gone after roam down');
});

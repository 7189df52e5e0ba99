import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot, roam, skipIfMissing, sleep, tempDir } from '../helpers.js';

/**
 * Podman runs Roam containers with `--runtime bin/roam-runtime`: the image is a root file system
 * holding a module built by roam cc, made as docs/oci.md says (tar, podman import --change CMD).
 */
const runtime = join(repoRoot, 'bin', 'roam-runtime');
const podmanWorks = spawnSync('podman', ['--version'], { encoding: 'utf8' }).status === 0;
const skip = skipIfMissing(!podmanWorks && 'podman (scripts/setup installs it)');
const suffix = `${process.pid}`;
const image = `localhost/roam-oci-test:${suffix}`;
const names = {
  hello: `roam-oci-hello-${suffix}`,
  forever: `roam-oci-forever-${suffix}`,
  bad: `roam-oci-bad-${suffix}`,
};
const { dir, cleanup } = tempDir('roam-oci-podman-');

function podman(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('podman', args, { encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/** NAME STATUS of a container, as `podman ps -a` shows it. */
const psStatus = (name: string) =>
  podman(['ps', '-a', '--filter', `name=^${name}$`, '--format', '{{.Status}}']).stdout.trim();

before(() => {
  if (skip) return;
  const rootfs = join(dir, 'rootfs');
  mkdirSync(rootfs);
  const cc = roam(['cc', '-O2', join(repoRoot, 'test', 'oci', 'guest.c'), '-o', join(rootfs, 'guest.wasm')]);
  assert.equal(cc.status, 0, cc.stderr);
  writeFileSync(join(rootfs, 'native.sh'), '#!/bin/sh\necho native\n', { mode: 0o755 });
  const tar = spawnSync('tar', ['-C', rootfs, '-cf', join(dir, 'rootfs.tar'), '.'], { encoding: 'utf8' });
  assert.equal(tar.status, 0, tar.stderr);
  const imported = podman(['import', '--change', 'CMD ["/guest.wasm"]', join(dir, 'rootfs.tar'), image]);
  assert.equal(imported.status, 0, imported.stderr);
  mkdirSync(join(dir, 'data'));
  copyFileSync(join(repoRoot, 'test', 'oci', 'guest.c'), join(dir, 'data', 'in.txt'));
});

after(() => {
  if (!skip) {
    podman(['rm', '-f', ...Object.values(names)]);
    podman(['rmi', '-f', image]);
  }
  cleanup();
});

test('podman run --runtime roam-runtime: the output of a roam cc program, its exit status, podman logs and ps -a', {
  skip,
}, () => {
  const run = podman([
    ...['run', '--name', names.hello, '--runtime', runtime, '-e', 'GREETING=podman'],
    ...['-v', `${join(dir, 'data')}:/data`, image, '/guest.wasm', '7'],
  ]);
  const expected = 'arg1=7\nGREETING=podman\ndata: /*\n';
  assert.equal(run.stdout, expected, run.stderr);
  assert.equal(run.status, 7);
  assert.equal(podman(['logs', names.hello]).stdout, expected);
  assert.match(psStatus(names.hello), /^Exited \(7\)/);
});

test('podman stop ends a long-running Roam container; ps -a shows it up, then exited', { skip }, async () => {
  const started = podman(['run', '-d', '--name', names.forever, '--runtime', runtime, image, '/guest.wasm', 'forever']);
  assert.equal(started.status, 0, started.stderr);
  for (let waited = 0; !podman(['logs', names.forever]).stdout.includes('tick 1\n'); waited += 200) {
    if (waited > 30_000) assert.fail(`no ticks: ${JSON.stringify(podman(['logs', names.forever]))}`);
    await sleep(200);
  }
  assert.match(psStatus(names.forever), /^Up /);
  const pid = Number(podman(['inspect', '--format', '{{.State.Pid}}', names.forever]).stdout.trim());
  assert.ok(pid > 0);
  const stopped = podman(['stop', '-t', '5', names.forever]);
  assert.equal(stopped.status, 0, stopped.stderr);
  assert.match(psStatus(names.forever), /^Exited \(143\)/, 'SIGTERM ended it');
  let gone = true;
  try {
    gone = readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z');
  } catch {
    // no such process
  }
  assert.ok(gone, 'the guest process is gone');
});

test('a command that is not a WebAssembly module: podman run fails with the runtime error', { skip }, () => {
  const run = podman(['run', '--name', names.bad, '--runtime', runtime, image, '/native.sh']);
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /roam-runtime: process\.args\[0\] \/native\.sh: not a WebAssembly module/);
  assert.equal(psStatus(names.bad), 'Created');
});

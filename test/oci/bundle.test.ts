import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { launchOf, parseConfig } from '../../src/oci/bundle.js';
import { signalNumber } from '../../src/oci/commands.js';
import { canMove, move, requireStatus } from '../../src/oci/lifecycle.js';
import { hasCode } from '../../src/platform/errors.js';
import { tempDir } from '../helpers.js';

/** config.json of the bundle as podman writes it, trimmed to what matters here. */
const config = (process: object, extra: object = {}) => ({
  ociVersion: '1.0.2',
  process: { args: ['/prog.wasm'], env: ['PATH=/usr/bin', 'GREETING=hi=there'], cwd: '/', ...process },
  root: { path: 'rootfs' },
  ...extra,
});

const { dir: bundle, cleanup } = tempDir('roam-oci-bundle-');
after(cleanup);
const rootfs = join(bundle, 'rootfs');
const volume = join(bundle, 'volume');
mkdirSync(rootfs);
mkdirSync(volume);
writeFileSync(join(rootfs, 'prog.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
writeFileSync(join(rootfs, 'script.sh'), '#!/bin/sh\necho native\n');
writeFileSync(join(bundle, 'hosts'), '127.0.0.1 localhost\n');

const bundleError = (pattern: RegExp) => (error: unknown) =>
  hasCode(error, 'ROAM_OCI_BUNDLE') && pattern.test((error as Error).message);

test('config.json: args, env, cwd and bind mounts of directories become the guest launch', () => {
  const launch = launchOf(
    bundle,
    parseConfig(
      config(
        { args: ['prog.wasm', 'x'], cwd: '/' },
        {
          mounts: [
            { destination: '/proc', type: 'proc', source: 'proc' },
            { destination: '/data', type: 'bind', source: volume, options: ['rbind', 'rw'] },
            { destination: '/etc/hosts', type: 'bind', source: join(bundle, 'hosts'), options: ['bind'] },
            { destination: '/dev/shm', type: 'tmpfs', source: 'shm' },
          ],
        },
      ),
    ),
  );
  assert.equal(launch.modulePath, join(rootfs, 'prog.wasm'));
  assert.deepEqual(launch.args, ['prog.wasm', 'x']);
  assert.deepEqual(launch.env, { PATH: '/usr/bin', GREETING: 'hi=there', ROAM_CWD: '/' });
  assert.deepEqual(launch.preopens, [
    { guestPath: '/', hostPath: rootfs },
    { guestPath: '/data', hostPath: volume },
  ]);
});

test('config.json: a malformed config is refused, naming the field', () => {
  assert.throws(() => parseConfig([]), bundleError(/expected a runtime-spec config/));
  assert.throws(() => parseConfig(config({ args: [] })), bundleError(/process\.args: expected the module to run/));
  assert.throws(() => parseConfig(config({ args: 'prog.wasm' })), bundleError(/process\.args: expected an array/));
  assert.throws(() => parseConfig(config({ cwd: 'relative' })), bundleError(/process\.cwd: expected an absolute path/));
  const { root: _, ...rootless } = config({});
  assert.throws(() => parseConfig(rootless), bundleError(/^config\.json: root:/));
});

test('config.json: args[0] must name a WebAssembly module in the root file system', () => {
  const launch = (process: object) => () => launchOf(bundle, parseConfig(config(process)));
  assert.throws(launch({ args: ['/absent.wasm'] }), bundleError(/absent\.wasm: no such file in the container's root/));
  assert.throws(launch({ args: ['/script.sh'] }), bundleError(/script\.sh: not a WebAssembly module/));
  assert.throws(launch({ args: ['/'] }), bundleError(/not a file/));
  assert.throws(launch({ env: ['NOEQUALS'] }), bundleError(/process\.env: "NOEQUALS": expected KEY=VALUE/));
  assert.throws(launch({ terminal: true }), bundleError(/terminal/));
});

test('lifecycle: created -> running -> stopped, and nothing else', () => {
  assert.equal(move('c', 'created', 'running'), 'running');
  assert.equal(move('c', 'created', 'stopped'), 'stopped');
  assert.equal(move('c', 'running', 'stopped'), 'stopped');
  assert.ok(!canMove('running', 'created'));
  assert.ok(!canMove('stopped', 'running'));
  assert.throws(
    () => move('c', 'stopped', 'running'),
    (error) => hasCode(error, 'ROAM_OCI_STATE'),
  );
  assert.doesNotThrow(() => requireStatus('c', 'created', 'start'));
  assert.throws(() => requireStatus('c', 'running', 'start'), /cannot start container c: it is running/);
  assert.throws(() => requireStatus('c', 'stopped', 'kill'), /cannot kill container c: it is stopped/);
  assert.throws(() => requireStatus('c', 'running', 'delete'), /cannot delete container c: it is running/);
});

test('signals are taken as runc takes them: KILL, SIGKILL or 9', () => {
  assert.equal(signalNumber('KILL'), 9);
  assert.equal(signalNumber('SIGTERM'), 15);
  assert.equal(signalNumber('15'), 15);
  assert.throws(
    () => signalNumber('SIGNOPE'),
    (error) => hasCode(error, 'ROAM_OCI_USAGE'),
  );
  assert.throws(
    () => signalNumber('999'),
    (error) => hasCode(error, 'ROAM_OCI_USAGE'),
  );
});

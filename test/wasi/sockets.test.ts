/** A C guest using the sockets API of roam cc's POSIX layer (test/fixtures/sockets.c), run in this thread. */
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { LateHost } from '../../src/container/late-host.js';
import type { Blocker } from '../../src/engine/blocking.js';
import { createStopFlag, Instance, requestStop } from '../../src/engine/instance.js';
import { type LoadedModule, loadModule } from '../../src/engine/module.js';
import { HOST_MODULES } from '../../src/wasi/constants.js';
import { WasiExit, WasiHost, type WasiHostState } from '../../src/wasi/host.js';
import { buildFixture, sleep } from '../helpers.js';
import { fifo, tempDir } from './helpers.js';

let modules: { plain: LoadedModule; roam: LoadedModule };
before(async () => {
  const built = buildFixture('sockets', tempDir());
  modules = { plain: await loadModule(built.plain), roam: await loadModule(built.roam) };
});

const isExit = (e: unknown) => (e instanceof WasiExit ? e.code : undefined);

function start(form: 'plain' | 'roam', name: string, stdin?: number) {
  const dir = tempDir();
  const out = join(dir, 'stdout');
  const err = join(dir, 'stderr');
  const stdoutFd = openSync(out, 'w');
  const stderrFd = openSync(err, 'w');
  const flag = createStopFlag();
  let host!: WasiHost;
  const instance = new Instance(
    modules[form],
    (blocker) =>
      (host = new WasiHost({
        args: ['sockets', name],
        stdout: stdoutFd,
        stderr: stderrFd,
        ...(stdin === undefined ? {} : { stdin }),
        blocker,
      })),
    isExit,
    flag,
  );
  return {
    instance,
    flag,
    host: () => host,
    stdout: () => readFileSync(out, 'utf8'),
    stderr: () => readFileSync(err, 'utf8'),
  };
}

for (const form of ['plain', 'roam'] as const) {
  for (const name of ['loopback', 'resolve', 'errors']) {
    test(`${form}: sockets ${name}`, async () => {
      const s = start(form, name);
      const outcome = await s.instance.run();
      assert.deepEqual(
        { outcome, stdout: s.stdout() },
        { outcome: { kind: 'exited', exitCode: 0 }, stdout: `ok ${name}\n` },
      );
      s.host().close();
      if (name === 'errors') {
        // One line per unsupported call, once each.
        assert.deepEqual(
          s
            .stderr()
            .split('\n')
            .filter(Boolean)
            .map((line) => line.slice(0, line.indexOf(' is not'))),
          ['roam: socket(AF_UNIX)', 'roam: socket(SOCK_DGRAM)', 'roam: connect(to another host)'],
        );
      }
    });
  }
}

test('roam: a guest stopped with loopback connections holding bytes goes on after a restore on a new host', async () => {
  const input = await fifo();
  const s = start('roam', 'hold', input.r);
  const running = s.instance.run();
  for (let i = 0; i < 100 && !s.stdout().includes('ready'); i++) await sleep(20);
  assert.equal(s.stdout(), 'ready\n');
  requestStop(s.flag);
  assert.deepEqual(await running, { kind: 'stopped' });
  const snapshot = s.instance.capture();
  const state = JSON.parse(JSON.stringify(snapshot.host)) as WasiHostState;
  assert.deepEqual(
    state.fds.slice(3).map((f) => f.kind),
    ['listener', 'stream', 'stream', 'stream'],
  );
  assert.equal(state.loopback?.pairs.length, 2);
  const memory = snapshot.memory.slice();
  s.host().close();
  closeSync(input.w);

  const dir = tempDir();
  writeFileSync(join(dir, 'stdin'), 'go\n');
  const stdin = openSync(join(dir, 'stdin'), 'r');
  const stdout = openSync(join(dir, 'stdout'), 'w');
  const names = WebAssembly.Module.imports(modules.roam.module)
    .filter((i) => HOST_MODULES.includes(i.module) && i.kind === 'function')
    .map(({ module, name }) => ({ module, name }));
  const late = new LateHost(names);
  let blocker!: Blocker;
  const moved = new Instance(
    modules.roam,
    (given) => {
      blocker = given;
      return late;
    },
    isExit,
  );
  moved.resetMemory(memory.length).set(memory);
  const host = WasiHost.restore(state, { stdin, stdout, blocker });
  late.bind(host);
  moved.restoreState(snapshot);
  assert.deepEqual(await moved.run(), { kind: 'exited', exitCode: 0 });
  host.close();
  closeSync(stdin);
  closeSync(stdout);
  assert.equal(readFileSync(join(dir, 'stdout'), 'utf8'), 'ok hold\n');
});

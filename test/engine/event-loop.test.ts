import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Instance } from '../../src/engine/instance.js';
import { loadModule } from '../../src/engine/module.js';
import { WasiExit, WasiHost } from '../../src/wasi/host.js';
import { buildFixture, tempDir } from '../helpers.js';

const { dir, cleanup } = tempDir();
let sleep: { plain: string; roam: string };
before(() => {
  sleep = buildFixture('sleep', dir);
});
after(cleanup);

/** Runs sleep.c for 200 ms in this thread and counts how often a 10 ms timer fired meanwhile. */
async function ticksWhileSleeping(modulePath: string): Promise<number> {
  const out = join(dir, 'sleep.out');
  const stdout = openSync(out, 'w');
  const instance = new Instance(
    await loadModule(modulePath),
    (blocker) => new WasiHost({ args: ['sleep', '200'], stdout, blocker }),
    (error) => (error instanceof WasiExit ? error.code : undefined),
  );
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  const outcome = await instance.run();
  clearInterval(timer);
  closeSync(stdout);
  assert.deepEqual(outcome, { kind: 'exited', exitCode: 0 });
  assert.equal(readFileSync(out, 'utf8'), 'slept 200 ms\n');
  return ticks;
}

test('a migratable module waits in poll_oneoff without blocking the event loop', async () => {
  const ticks = await ticksWhileSleeping(sleep.roam);
  assert.ok(ticks >= 10, `timer fired ${ticks} times during a 200 ms guest sleep`);
});

test('a plain module cannot suspend, so it waits synchronously (and still sleeps correctly)', async () => {
  assert.equal(await ticksWhileSleeping(sleep.plain), 0);
});

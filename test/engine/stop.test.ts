import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { createStopFlag, requestStop } from '../../src/engine/instance.js';
import { buildFixture, roam, tempDir } from '../helpers.js';

const { dir, cleanup } = tempDir();
let spin: { plain: string; roam: string };
before(() => {
  spin = buildFixture('spin', dir);
});
after(cleanup);

interface Report {
  outcome?: { kind: string; exitCode?: number };
  at?: number;
  ready?: boolean;
}

function nextMessage(worker: Worker): Promise<Report> {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

test('a compute loop stops within 1 ms of a request and resumes to the same result', async () => {
  const rounds = '30000000';
  const expected = roam(['run', spin.plain, '--', rounds]).stdout;
  assert.match(expected, /^result=\d+\n$/);

  const flag = createStopFlag();
  const worker = new Worker(join(import.meta.dirname, 'run-in-worker.js'), {
    workerData: { modulePath: spin.roam, args: [rounds], flag, stdoutPath: join(dir, 'spin.out') },
  });
  assert.deepEqual(await nextMessage(worker), { ready: true });
  const latencies: number[] = [];
  for (;;) {
    worker.postMessage('run');
    const reply = nextMessage(worker);
    await new Promise((r) => setTimeout(r, 25));
    const requested = performance.timeOrigin + performance.now();
    requestStop(flag);
    const report = await reply;
    if (report.outcome!.kind === 'exited') {
      assert.equal(report.outcome!.exitCode, 0);
      break;
    }
    assert.equal(report.outcome!.kind, 'stopped');
    latencies.push(report.at! - requested);
  }
  await worker.terminate();
  assert.equal(readFileSync(join(dir, 'spin.out'), 'utf8'), expected, 'stopping and resuming does not change the result');
  assert.ok(latencies.length >= 3, `stopped ${latencies.length} times`);
  latencies.sort((a, b) => a - b);
  const median = latencies[Math.floor(latencies.length / 2)]!;
  console.log(`stop latency over ${latencies.length} stops: median ${median.toFixed(3)} ms, max ${latencies.at(-1)!.toFixed(3)} ms`);
  assert.ok(median < 1, `median stop latency ${median} ms`);
});

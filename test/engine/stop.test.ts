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
let sjlj: { plain: string; roam: string };
before(() => {
  spin = buildFixture('spin', dir);
  sjlj = buildFixture('sjlj', dir);
});
after(cleanup);

interface Report {
  outcome?: { kind: string; exitCode?: number };
  at?: number;
  ready?: boolean;
}

function nextMessage(worker: Worker): Promise<Report> {
  return new Promise((resolve, reject) => {
    worker.once('message', (report: Report) => {
      worker.off('error', reject);
      resolve(report);
    });
    worker.once('error', reject);
  });
}

function startWorker(module: string, args: string[], flag: Int32Array, stdoutPath: string): Worker {
  return new Worker(join(import.meta.dirname, 'run-in-worker.js'), {
    workerData: { modulePath: module, args, flag, stdoutPath },
  });
}

/** Runs `module` in a worker, stopping it every `everyMs` until it exits; returns the stop latencies. */
async function stopRepeatedly(module: string, args: string[], everyMs: number, stdoutPath: string): Promise<number[]> {
  const flag = createStopFlag();
  const worker = startWorker(module, args, flag, stdoutPath);
  assert.deepEqual(await nextMessage(worker), { ready: true });
  const latencies: number[] = [];
  for (;;) {
    worker.postMessage('run');
    const reply = nextMessage(worker);
    await new Promise((r) => setTimeout(r, everyMs));
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
  return latencies;
}

test('a compute loop stops on request and resumes to the same result (its latency is judged in the bench)', async () => {
  const rounds = '30000000';
  const expected = roam(['run', spin.plain, '--', rounds]).stdout;
  assert.match(expected, /^result=\d+\n$/);
  const latencies = await stopRepeatedly(spin.roam, [rounds], 25, join(dir, 'spin.out'));
  assert.equal(
    readFileSync(join(dir, 'spin.out'), 'utf8'),
    expected,
    'stopping and resuming does not change the result',
  );
  assert.ok(latencies.length >= 3, `stopped ${latencies.length} times`);
  latencies.sort((a, b) => a - b);
  const median = latencies[Math.floor(latencies.length / 2)]!;
  console.log(
    `stop latency over ${latencies.length} stops: median ${median.toFixed(3)} ms, max ${latencies.at(-1)!.toFixed(3)} ms`,
  );
});

test('stops inside setjmp-protected calls (through the host invoke_* wrappers) resume correctly', async () => {
  const expected = roam(['run', sjlj.plain]).stdout;
  const latencies = await stopRepeatedly(sjlj.roam, [], 2, join(dir, 'sjlj.out'));
  assert.equal(readFileSync(join(dir, 'sjlj.out'), 'utf8'), expected);
  assert.ok(latencies.length >= 3, `stopped ${latencies.length} times`);
});

test('a stop requested while the guest is stopped, before it runs again, is not lost', async () => {
  const flag = createStopFlag();
  const worker = startWorker(spin.roam, ['30000000'], flag, join(dir, 'standing.out'));
  try {
    assert.deepEqual(await nextMessage(worker), { ready: true });
    worker.postMessage('run');
    const first = nextMessage(worker);
    await new Promise((r) => setTimeout(r, 10));
    requestStop(flag);
    assert.equal((await first).outcome!.kind, 'stopped');
    // The request comes before the resume (as a migration right after a failed one can): the
    // guest must stop again instead of running to its end.
    requestStop(flag);
    worker.postMessage('run');
    assert.equal((await nextMessage(worker)).outcome!.kind, 'stopped');
  } finally {
    await worker.terminate();
  }
});

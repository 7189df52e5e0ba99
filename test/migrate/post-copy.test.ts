import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  allGranules,
  type GranuleRanges,
  granuleBytes,
  lazyRestoreSupport,
  openPageChannels,
  type PageChannels,
  PageServer,
  startLazyRestore,
} from '../../src/migrate/post-copy.js';
import { decodeMissing, encodeMissing } from '../../src/protocol/data-channel.js';
import { skipIfMissing } from '../helpers.js';

const support = lazyRestoreSupport();
const skip = skipIfMissing(support.ok ? false : `post-copy unavailable here: ${support.reason}`);
const ticket = 'a'.repeat(48);

/** Source contents: pseudo-random granules, every fifth one all zero (sent as a header alone). */
function sourceMemory(bytes: number, seed: number): Uint8Array {
  const memory = new Uint8Array(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    if (Math.floor(i / granuleBytes) % 5 !== 0) memory.set([x & 255, (x >>> 8) & 255, (x >>> 16) & 255, x >>> 24], i);
  }
  return memory;
}

/** A destination listener that accepts the two page channels without reading from them. */
async function pausedListener(): Promise<{ server: Server; port: number; accepted: Promise<PageChannels> }> {
  const server = createServer({ pauseOnConnect: true });
  const sockets: Socket[] = [];
  const accepted = new Promise<PageChannels>((resolve) =>
    server.on('connection', (socket: Socket) => {
      if (sockets.push(socket) === 2) resolve({ push: sockets[0]!, fault: sockets[1]! });
    }),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, accepted };
}

/**
 * A guest stand-in on another thread: reads and writes the destination memory at random while the
 * pages arrive. Each first read of a byte must see the source's value; written bytes are reported
 * back so that the final contents can be checked.
 */
function runGuest(
  memory: WebAssembly.Memory,
  source: SharedArrayBuffer,
  operations: number,
): Promise<{ writes: [number, number][]; mismatches: number }> {
  const worker = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads');
     const mem = new Uint8Array(workerData.memory.buffer);
     const src = new Uint8Array(workerData.source);
     const written = new Map();
     let x = 0x12345678, mismatches = 0;
     const rnd = () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return x >>> 0; };
     for (let op = 0; op < workerData.operations; op++) {
       // Mostly a hot 4 MiB, sometimes anywhere: some granules are asked for, the rest pushed.
       const at = rnd() % 20 === 0 ? rnd() % mem.length : rnd() % (4 << 20);
       const expected = written.has(at) ? written.get(at) : src[at];
       if (mem[at] !== expected) mismatches++;
       if (rnd() % 3 === 0) {
         const value = rnd() & 255;
         mem[at] = value;
         written.set(at, value);
       }
     }
     parentPort.postMessage({ writes: [...written], mismatches });`,
    { eval: true, workerData: { memory, source, operations } },
  );
  return once(worker, 'message').then(([result]) => result as { writes: [number, number][]; mismatches: number });
}

async function postCopy(
  memoryBytes: number,
  missing: GranuleRanges,
  options: { presentFill?: number; guestOperations: number; pushDelayMs: number },
) {
  const sourceBytes = sourceMemory(memoryBytes, 7);
  const shared = new SharedArrayBuffer(memoryBytes);
  new Uint8Array(shared).set(sourceBytes);
  const memory = new WebAssembly.Memory({ initial: memoryBytes / 65536, maximum: memoryBytes / 65536, shared: true });
  // What the destination holds already (a pre-copy round): the source's bytes, outside the missing ranges.
  new Uint8Array(memory.buffer).set(sourceBytes);
  const listener = await pausedListener();
  const channels = await openPageChannels('127.0.0.1', listener.port, ticket);
  const restored = startLazyRestore(memory, missing, await listener.accepted, ticket);
  listener.server.close();
  const server = new PageServer(channels, sourceBytes, missing);
  const guest = runGuest(memory, shared, options.guestOperations);
  setTimeout(() => server.startPushing(), options.pushDelayMs);
  const [stats, served, result] = await Promise.all([restored, server.done, guest]);
  return { stats, served, result, memory: new Uint8Array(memory.buffer), sourceBytes };
}

test('post-copy: a guest reading and writing at random while pages arrive sees the source memory, and keeps its writes', {
  skip,
}, async () => {
  const memoryBytes = 128 << 20;
  const { stats, served, result, memory, sourceBytes } = await postCopy(memoryBytes, allGranules(memoryBytes), {
    guestOperations: 40_000,
    pushDelayMs: 300,
  });
  assert.equal(result.mismatches, 0, 'every read saw the source value or the guest own write');
  const expected = Buffer.from(sourceBytes);
  for (const [at, value] of result.writes) expected[at] = value;
  assert.ok(
    Buffer.from(memory).equals(expected),
    'final memory = source + the guest writes (none overwritten by a late page)',
  );
  assert.ok(stats.faults > 0, 'the guest faulted on missing pages');
  assert.ok(served.requestedBytes > 0 && served.pushedBytes > 0, 'pages came both on request and by push');
  assert.equal(stats.receivedBytes + stats.zeroBytes - stats.duplicateBytes, memoryBytes, 'every byte installed once');
  assert.ok(stats.zeroBytes > 0, 'zero granules went as headers');
});

test('post-copy: only the missing ranges are fetched; pages already here stay as they are', { skip }, async () => {
  const memoryBytes = 16 << 20;
  // Two dirty ranges; the rest arrived in a pre-copy round.
  const missing = Uint32Array.from([3, 10, 100, 140]);
  const { stats, result, memory, sourceBytes } = await postCopy(memoryBytes, missing, {
    guestOperations: 50_000,
    pushDelayMs: 5,
  });
  assert.equal(result.mismatches, 0);
  const expected = Buffer.from(sourceBytes);
  for (const [at, value] of result.writes) expected[at] = value;
  assert.ok(Buffer.from(memory).equals(expected));
  assert.equal(stats.receivedBytes + stats.zeroBytes - stats.duplicateBytes, granuleBytes * 47);
});

test('post-copy: the kernel reading missing guest memory (write(2) from it) waits for the pages too', {
  skip,
}, async () => {
  const memoryBytes = 4 << 20;
  const sourceBytes = sourceMemory(memoryBytes, 11);
  const memory = new WebAssembly.Memory({ initial: memoryBytes / 65536, maximum: memoryBytes / 65536, shared: true });
  const listener = await pausedListener();
  const channels = await openPageChannels('127.0.0.1', listener.port, ticket);
  const restored = startLazyRestore(memory, allGranules(memoryBytes), await listener.accepted, ticket);
  listener.server.close();
  const server = new PageServer(channels, sourceBytes, allGranules(memoryBytes));
  const out = join(tmpdir(), `roam-post-copy-${process.pid}.bin`);
  // No pushes yet: the bytes can only come through faults taken inside the kernel's copy.
  const worker = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads');
     const fs = require('node:fs');
     const fd = fs.openSync(workerData.out, 'w');
     fs.writeSync(fd, new Uint8Array(workerData.memory.buffer, 65536 * 3, 65536 * 5));
     fs.closeSync(fd);
     parentPort.postMessage('written');`,
    { eval: true, workerData: { memory, out } },
  );
  await once(worker, 'message');
  server.startPushing();
  await Promise.all([restored, server.done]);
  try {
    assert.ok(readFileSync(out).equals(Buffer.from(sourceBytes.subarray(65536 * 3, 65536 * 8))));
  } finally {
    rmSync(out, { force: true });
  }
});

test('post-copy: a source lost mid-way is reported as an error, and a wrong ticket is refused', { skip }, async () => {
  const memoryBytes = 4 << 20;
  const memory = new WebAssembly.Memory({ initial: memoryBytes / 65536, maximum: memoryBytes / 65536, shared: true });
  const listener = await pausedListener();
  const channels = await openPageChannels('127.0.0.1', listener.port, ticket);
  const restored = startLazyRestore(memory, allGranules(memoryBytes), await listener.accepted, ticket);
  listener.server.close();
  channels.push.destroy();
  channels.fault.destroy();
  await assert.rejects(restored, /closed the page channel with 64 of 1024 pages still missing|closed the page channel/);

  const memory2 = new WebAssembly.Memory({ initial: 16, maximum: 16, shared: true });
  const listener2 = await pausedListener();
  const channels2 = await openPageChannels('127.0.0.1', listener2.port, 'b'.repeat(48));
  const refused = startLazyRestore(memory2, allGranules(16 * 65536), await listener2.accepted, ticket);
  listener2.server.close();
  await assert.rejects(refused, /wrong ticket/);
  channels2.push.destroy();
  channels2.fault.destroy();

  // Ranges the memory cannot hold: refused at once, before anything could run.
  const listener3 = await pausedListener();
  const channels3 = await openPageChannels('127.0.0.1', listener3.port, ticket);
  const accepted3 = await listener3.accepted;
  listener3.server.close();
  assert.throws(
    () => startLazyRestore(memory2, allGranules(17 * 65536), accepted3, ticket),
    /post-copy cannot start here: .*missing: expected increasing \[first, end\) granule ranges inside the memory/,
  );
  channels3.push.destroy();
  channels3.fault.destroy();
});

test('post-copy: a memory of 4 GiB, the most wasm32 allows, arrives to its last granule', {
  skip,
  timeout: 120_000,
}, async () => {
  const memoryBytes = 2 ** 32;
  const missing = allGranules(memoryBytes);
  assert.deepEqual(
    decodeMissing(encodeMissing(memoryBytes, missing)),
    { memoryBytes, missing },
    'the PostCopy frame can say it',
  );
  // Zero but for a few marks (zero granules go as headers, so this stays quick).
  const sourceBytes = new Uint8Array(memoryBytes);
  const marks = [5, memoryBytes / 2 + 12345, memoryBytes - granuleBytes, memoryBytes - 1];
  for (const [i, at] of marks.entries()) sourceBytes[at] = 101 + i;
  const memory = new WebAssembly.Memory({ initial: memoryBytes / 65536, maximum: memoryBytes / 65536, shared: true });
  const listener = await pausedListener();
  const channels = await openPageChannels('127.0.0.1', listener.port, ticket);
  const restored = startLazyRestore(memory, missing, await listener.accepted, ticket);
  listener.server.close();
  const server = new PageServer(channels, sourceBytes, missing);
  server.startPushing();
  const [stats] = await Promise.all([restored, server.done]);
  const view = new Uint8Array(memory.buffer);
  assert.deepEqual(
    marks.map((at) => view[at]),
    [101, 102, 103, 104],
  );
  assert.equal(stats.receivedBytes + stats.zeroBytes - stats.duplicateBytes, memoryBytes, 'every byte installed once');
});

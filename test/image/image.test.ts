import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { sha256 } from '../../src/build/manifest.js';
import type { ImageErrorCode } from '../../src/image/format.js';
import { Image, writeImage } from '../../src/image/image.js';
import { buildFixture, roam, roamInBackground, sleep, tempDir, waitForContainer } from '../helpers.js';

const { dir, cleanup } = tempDir();
after(cleanup);

/** 4 MiB of memory: zero pages, compressible pages and random pages. */
function sampleMemory(): Uint8Array {
  const memory = new Uint8Array(64 * 65536);
  for (let i = 0; i < 65536; i++) memory[i] = i % 251;
  for (let i = 10 * 65536; i < 11 * 65536; i++) memory[i] = (Math.random() * 256) | 0;
  memory[memory.length - 1] = 9;
  return memory;
}

const module = new Uint8Array(Buffer.from('\0asm\x01\0\0\0'));
const content = {
  source: { isa: 'x64', node: process.version, host: 'test' },
  module,
  moduleDigest: sha256(module),
  memory: sampleMemory(),
  state: { hello: ['world', 1] },
};

for (const archive of [false, true]) {
  test(`${archive ? 'archive' : 'directory'} form round-trips memory and state, omitting zero pages`, () => {
    const path = join(dir, `round-trip-${archive}`);
    const manifest = writeImage(path, content, { archive, compression: 'deflate' });
    assert.equal(manifest.memory.chunks.length, 3, 'only the three non-zero pages are stored');
    assert.ok(manifest.memory.storedBytes < 3 * 65536);
    const image = Image.open(path);
    const memory = new Uint8Array(content.memory.length);
    image.restoreMemory(memory);
    assert.deepEqual(memory, content.memory);
    assert.deepEqual(image.state(), content.state);
    assert.deepEqual(new Uint8Array(image.module), module);
  });
}

test('damaged images are refused with a clear error before anything is used', () => {
  const archive = join(dir, 'damaged.img');
  const directory = join(dir, 'damaged-dir');
  const fresh = () => {
    writeImage(archive, content, { archive: true, compression: 'deflate' });
    writeImage(directory, content, { archive: false, compression: 'deflate' });
  };
  const cases: [string, () => void, string, ImageErrorCode, RegExp][] = [
    [
      'truncated archive',
      () => truncateSync(archive, readFileSync(archive).length - 100),
      archive,
      'ROAM_IMAGE_CORRUPT',
      /truncated/,
    ],
    ['cut inside the manifest', () => truncateSync(archive, 40), archive, 'ROAM_IMAGE_CORRUPT', /truncated/],
    [
      'flipped memory byte',
      () => flip(join(directory, 'memory.bin'), 100),
      directory,
      'ROAM_IMAGE_CORRUPT',
      /checksum mismatch in memory chunk 0/,
    ],
    [
      'flipped state byte',
      () => flip(join(directory, 'state.json'), 3),
      directory,
      'ROAM_IMAGE_CORRUPT',
      /checksum mismatch in the state/,
    ],
    [
      'missing part',
      () => rmSync(join(directory, 'memory.bin')),
      directory,
      'ROAM_IMAGE_CORRUPT',
      /memory\.bin is missing/,
    ],
    [
      'wrong version',
      () => editManifest(directory, (m) => (m.version = 99)),
      directory,
      'ROAM_IMAGE_VERSION',
      /format version 99 is not supported/,
    ],
    [
      'not an image',
      () => writeFileSync(archive, 'hello'),
      archive,
      'ROAM_IMAGE_NOT_IMAGE',
      /not a Roam checkpoint image/,
    ],
  ];
  for (const [what, damage, path, code, message] of cases) {
    fresh();
    damage();
    assert.throws(() => Image.open(path), { code, message }, what);
  }
  assert.throws(() => Image.open(join(dir, 'nothing-here')), {
    code: 'ROAM_IMAGE_NOT_FOUND',
    message: /no such image/,
  });
});

test('roam restore refuses damaged images, a wrong module and a missing directory, in one line', async () => {
  process.env.ROAM_RUNTIME_DIR = join(dir, 'run');
  const modules = join(dir, 'modules');
  const spin = buildFixture('spin', modules);
  const other = buildFixture('hello', modules);
  const data = join(dir, 'data');
  rmSync(data, { recursive: true, force: true });
  mkdirSync(data);
  const source = roamInBackground(['run', '--name', 'victim', '--dir', `${data}:/data`, spin.roam, '--', '2000000000']);
  await waitForContainer('victim', join(dir, 'run'));
  await sleep(100);
  const image = join(dir, 'victim.img');
  assert.equal(roam(['checkpoint', 'victim', '-o', image, '--archive']).status, 0);
  await source.done;

  const expectOneLine = (args: string[], message: RegExp) => {
    const result = roam(args);
    assert.equal(result.status, 1, result.stderr);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^roam: [^\n]+\n$/);
    assert.match(result.stderr, message);
  };
  expectOneLine(['restore', image, '--module', other.roam], /wrong module/);
  expectOneLine(['restore', image, '--dir', `${join(dir, 'nope')}:/data`], /no such directory/);
  rmSync(data, { recursive: true });
  expectOneLine(['restore', image], /preopened directory \/data: .* does not exist on this node/);
  expectOneLine(['restore', image, '--isa', 'sparc'], /--isa sparc: expected one of/);
  const damaged = join(dir, 'victim-damaged.img');
  const bytes = readFileSync(image);
  bytes[bytes.length - 10]! ^= 0xff;
  writeFileSync(damaged, bytes);
  expectOneLine(['restore', damaged, '--isa', 'arm64'], /checksum mismatch/);
  writeFileSync(damaged, bytes.subarray(0, bytes.length - 5000));
  expectOneLine(['restore', damaged], /truncated/);
  expectOneLine(['checkpoint', 'victim', '-o', join(dir, 'x.img')], /no running container named "victim"/);
});

test("an image carries the container's epoch; a restored container keeps it in its next image", async () => {
  process.env.ROAM_RUNTIME_DIR = join(dir, 'run');
  const spin = buildFixture('spin', join(dir, 'modules'));
  const first = roamInBackground(['run', '--name', 'epochs', spin.roam, '--', '2000000000']);
  await waitForContainer('epochs', join(dir, 'run'));
  const image = join(dir, 'epoch-1.img');
  assert.equal(roam(['checkpoint', 'epochs', '-o', image]).status, 0);
  await first.done;
  const taken = Image.open(image);
  const state = taken.state() as { epoch?: number };
  assert.equal(state.epoch, 1, 'a container that never moved is at epoch 1');

  // As if it had moved twice before this checkpoint: the restored container must keep epoch 3.
  const memory = new Uint8Array(taken.guest.manifest.memory.bytes);
  taken.restoreMemory(memory);
  const moved = join(dir, 'epoch-3.img');
  const wasm = new Uint8Array(taken.module);
  writeImage(
    moved,
    { source: taken.manifest.source, module: wasm, moduleDigest: sha256(wasm), memory, state: { ...state, epoch: 3 } },
    { archive: false, compression: 'deflate' },
  );
  const restored = roamInBackground(['restore', moved, '--name', 'epochs']);
  await waitForContainer('epochs', join(dir, 'run'));
  const again = join(dir, 'epoch-3-again.img');
  assert.equal(roam(['checkpoint', 'epochs', '-o', again]).status, 0);
  assert.equal((await restored.done).status, 0);
  assert.equal((Image.open(again).state() as { epoch?: number }).epoch, 3);
});

function flip(path: string, offset: number): void {
  const bytes = readFileSync(path);
  bytes[offset]! ^= 0xff;
  writeFileSync(path, bytes);
}

function editManifest(directory: string, edit: (manifest: { version: number }) => void): void {
  const path = join(directory, 'manifest.json');
  const manifest = JSON.parse(readFileSync(path, 'utf8'));
  edit(manifest);
  writeFileSync(path, JSON.stringify(manifest));
}

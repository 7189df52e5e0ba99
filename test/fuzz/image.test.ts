import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { archiveMagic } from '../../src/image/format.js';
import { Image, writeImage } from '../../src/image/image.js';
import { tempDir } from '../helpers.js';
import { fuzz, fuzzSeconds, mutated, mutatedJson } from './fuzz.js';

// The image reader, fed damaged and hand-made checkpoint images: it reads one, or refuses it
// with an ImageError, never anything else (roam restore and roam inspect rely on that).
const { dir, cleanup } = tempDir();
after(cleanup);

/** A small valid archive image: 3 chunks of memory (one all zeros), a module, a state. */
function validArchive(): Buffer {
  const memory = new Uint8Array(3 * 65536);
  memory.fill(7, 0, 65536);
  for (let i = 131072; i < memory.length; i++) memory[i] = i & 0xff;
  const path = join(dir, 'valid.roam');
  writeImage(
    path,
    {
      source: { isa: 'x64', node: 'here', host: 'test' },
      module: Buffer.from('\0asm\x01\0\0\0'),
      moduleDigest: 'a'.repeat(64),
      memory,
      state: { preopens: [], epoch: 1 },
    },
    { archive: true, compression: 'deflate' },
  );
  return readFileSync(path);
}

/** The archive with its manifest replaced by `manifest` (the header length kept right). */
function withManifest(archive: Buffer, manifest: unknown): Buffer {
  const at = archiveMagic.length;
  const length = archive.readUInt32LE(at);
  const text = Buffer.from(JSON.stringify(manifest) ?? 'null');
  const header = Buffer.alloc(4);
  header.writeUInt32LE(text.length);
  return Buffer.concat([archiveMagic, header, text, archive.subarray(at + 4 + length)]);
}

test(`image reader: a damaged or hand-made image is read or refused with an ImageError (${fuzzSeconds} s)`, {
  timeout: (fuzzSeconds + 60) * 1000,
}, (t) => {
  const valid = validArchive();
  const manifest = JSON.parse(
    valid
      .subarray(archiveMagic.length + 4, archiveMagic.length + 4 + valid.readUInt32LE(archiveMagic.length))
      .toString(),
  ) as Record<string, unknown>;
  const nested = (key: string) =>
    mutatedJson(manifest[key] as Record<string, unknown>).map((value) => ({ ...manifest, [key]: value }));
  const images = fc.oneof(
    mutated(valid),
    mutatedJson(manifest).map((m) => withManifest(valid, m)),
    fc.oneof(nested('module'), nested('memory'), nested('state'), nested('source')).map((m) => withManifest(valid, m)),
  );
  const path = join(dir, 'fuzzed.roam');
  const { runs } = fuzz(images, (bytes) => {
    writeFileSync(path, bytes);
    const image = Image.open(path);
    image.containerState();
    for (const guest of image.isContainer ? image.processes : [image.guest]) {
      guest.state();
      void guest.module;
      // restoreMemory's contract: a memory of the manifest's size (large ones are not made here).
      const { bytes } = guest.manifest.memory;
      if (bytes <= 1 << 24) guest.restoreMemory(new Uint8Array(bytes));
    }
  });
  t.diagnostic(`${runs} inputs`);
  assert.ok(runs > 0);
});

import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  archiveMagic,
  type BlobRef,
  type Compression,
  chunkBytes,
  ImageError,
  type ImageManifest,
  imageFormat,
  imageVersion,
  partFiles,
} from './format.js';
import { checksum, decodeMemory, encodeMemory } from './memory-chunks.js';

/** What a checkpoint holds, independent of how it is stored. */
export interface ImageContent {
  source: ImageManifest['source'];
  module: Uint8Array;
  moduleDigest: string;
  memory: Uint8Array;
  /** Engine + host state: plain JSON-able data. */
  state: unknown;
}

export interface WriteOptions {
  /** Single-file archive instead of a directory. */
  archive: boolean;
  compression: Compression;
}

/** Writes a checkpoint image (atomically: to a temporary name, then renamed). */
export function writeImage(path: string, content: ImageContent, options: WriteOptions): ImageManifest {
  const { chunks, data } = encodeMemory(content.memory, options.compression);
  const stateBytes = Buffer.from(JSON.stringify(content.state));
  const memoryBytes = chunks.reduce((n, c) => n + c.length, 0);
  const blob = (offset: number, bytes: Uint8Array): BlobRef => ({
    offset,
    length: bytes.length,
    sha256: checksum(bytes),
  });
  // Archive body order: module, memory, state. The directory form keeps each at offset 0 of its file.
  const base = options.archive
    ? { module: 0, memory: content.module.length, state: content.module.length + memoryBytes }
    : { module: 0, memory: 0, state: 0 };
  const manifest: ImageManifest = {
    format: imageFormat,
    version: imageVersion,
    createdAt: new Date().toISOString(),
    source: content.source,
    module: { digest: content.moduleDigest, ...blob(base.module, content.module) },
    memory: {
      bytes: content.memory.length,
      chunkBytes,
      storedBytes: memoryBytes,
      compression: options.compression,
      chunks: chunks.map((c) => ({ ...c, offset: c.offset + base.memory })),
    },
    state: blob(base.state, stateBytes),
  };
  const temp = `${path}.partial-${process.pid}`;
  rmSync(temp, { recursive: true, force: true });
  if (options.archive) {
    const header = Buffer.from(JSON.stringify(manifest));
    const length = Buffer.alloc(4);
    length.writeUInt32LE(header.length);
    const fd = openSync(temp, 'w');
    try {
      for (const part of [archiveMagic, length, header, content.module, ...data, stateBytes]) writeSync(fd, part);
    } finally {
      closeSync(fd);
    }
  } else {
    mkdirSync(temp);
    writeFileSync(join(temp, partFiles.module), content.module);
    const fd = openSync(join(temp, partFiles.memory), 'w');
    try {
      for (const part of data) writeSync(fd, part);
    } finally {
      closeSync(fd);
    }
    writeFileSync(join(temp, partFiles.state), stateBytes);
    writeFileSync(join(temp, partFiles.manifest), `${JSON.stringify(manifest, null, 1)}\n`);
  }
  rmSync(path, { recursive: true, force: true });
  renameSync(temp, path);
  return manifest;
}

/** A checkpoint image whose structure and every checksum were verified on open. */
export class Image {
  private constructor(
    readonly path: string,
    readonly manifest: ImageManifest,
    private readonly parts: { module: Uint8Array; memory: Uint8Array; state: Uint8Array },
  ) {}

  static open(path: string): Image {
    if (!existsSync(path)) throw new ImageError('ROAM_IMAGE_NOT_FOUND', `${path}: no such image`);
    const { manifest, module, memory, state } = statSync(path).isDirectory() ? readDirectory(path) : readArchive(path);
    verify(manifest, module, memory, state);
    return new Image(path, manifest, { module, memory, state });
  }

  get module(): Uint8Array {
    const { offset, length } = this.manifest.module;
    return this.parts.module.subarray(offset, offset + length);
  }

  state(): unknown {
    const { offset, length } = this.manifest.state;
    try {
      return JSON.parse(Buffer.from(this.parts.state.subarray(offset, offset + length)).toString('utf8'));
    } catch (error) {
      throw new ImageError('ROAM_IMAGE_CORRUPT', `${this.path}: image state is not valid JSON`, { cause: error });
    }
  }

  /** Fills `memory` (at least manifest.memory.bytes long, zeroed) with the checkpointed pages. */
  restoreMemory(memory: Uint8Array): void {
    decodeMemory(memory, this.manifest.memory.chunks, this.parts.memory);
  }
}

function parseManifest(path: string, text: string): ImageManifest {
  let manifest: ImageManifest;
  try {
    manifest = JSON.parse(text) as ImageManifest;
  } catch (error) {
    throw new ImageError('ROAM_IMAGE_CORRUPT', `${path}: image manifest is corrupt (not JSON)`, { cause: error });
  }
  if (manifest?.format !== imageFormat)
    throw new ImageError('ROAM_IMAGE_NOT_IMAGE', `${path}: not a Roam checkpoint image`);
  if (manifest.version !== imageVersion) {
    throw new ImageError(
      'ROAM_IMAGE_VERSION',
      `${path}: image format version ${manifest.version} is not supported (this roam reads version ${imageVersion})`,
    );
  }
  return manifest;
}

function readDirectory(path: string) {
  const read = (name: string) => {
    try {
      return readFileSync(join(path, name));
    } catch (error) {
      throw new ImageError('ROAM_IMAGE_CORRUPT', `${path}: image is incomplete: ${name} is missing`, { cause: error });
    }
  };
  const manifest = parseManifest(path, read(partFiles.manifest).toString('utf8'));
  return { manifest, module: read(partFiles.module), memory: read(partFiles.memory), state: read(partFiles.state) };
}

function readArchive(path: string) {
  const file = readFileSync(path);
  if (file.length < archiveMagic.length + 4 || !file.subarray(0, archiveMagic.length).equals(archiveMagic)) {
    throw new ImageError('ROAM_IMAGE_NOT_IMAGE', `${path}: not a Roam checkpoint image`);
  }
  const headerLength = file.readUInt32LE(archiveMagic.length);
  const headerStart = archiveMagic.length + 4;
  if (headerStart + headerLength > file.length)
    throw new ImageError('ROAM_IMAGE_CORRUPT', `${path}: image is truncated (manifest incomplete)`);
  const manifest = parseManifest(path, file.subarray(headerStart, headerStart + headerLength).toString('utf8'));
  const body = file.subarray(headerStart + headerLength);
  return { manifest, module: body, memory: body, state: body };
}

/** Checks every blob's bounds and checksum, so nothing runs from a damaged image. */
function verify(manifest: ImageManifest, module: Uint8Array, memory: Uint8Array, state: Uint8Array): void {
  const check = (what: string, ref: BlobRef, file: Uint8Array) => {
    if (ref.offset + ref.length > file.length)
      throw new ImageError('ROAM_IMAGE_CORRUPT', `image is truncated: ${what} is incomplete`);
    if (checksum(file.subarray(ref.offset, ref.offset + ref.length)) !== ref.sha256) {
      throw new ImageError('ROAM_IMAGE_CORRUPT', `image is corrupt: checksum mismatch in ${what}`);
    }
  };
  check('the module', manifest.module, module);
  check('the state', manifest.state, state);
  for (const chunk of manifest.memory.chunks) check(`memory chunk ${chunk.index}`, chunk, memory);
}

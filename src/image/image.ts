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
  type ContainerImageManifest,
  checkManifest,
  chunkBytes,
  type GuestManifest,
  ImageError,
  type ImageManifest,
  imageFormat,
  imageVersion,
  isContainerManifest,
  partFiles,
  readableVersions,
  type SingleImageManifest,
} from './format.js';
import { checksum, decodeMemory, encodeMemory } from './memory-chunks.js';

/** One guest of a checkpoint: plain data, independent of how it is stored. */
export interface GuestContent {
  module: Uint8Array;
  moduleDigest: string;
  memory: Uint8Array;
  /** Engine + host state: plain JSON-able data. */
  state: unknown;
}

/** What a checkpoint of one guest holds. */
export interface ImageContent extends GuestContent {
  source: ImageManifest['source'];
}

/** What a checkpoint of a container of several processes holds. */
export interface ContainerImageContent {
  source: ImageManifest['source'];
  processes: (GuestContent & { name: string })[];
  /** The container's own state (its network, pipes, ended processes): plain JSON-able data. */
  container: unknown;
}

export interface WriteOptions {
  /** Single-file archive instead of a directory. */
  archive: boolean;
  compression: Compression;
}

/**
 * The three blobs of an image as they are filled: each part is appended to its blob, and its
 * reference says where (offsets within the blob; the archive form adds each blob's base).
 */
class BlobWriter {
  readonly modules: Uint8Array[] = [];
  readonly memory: Buffer[] = [];
  readonly states: Buffer[] = [];
  private readonly at = { modules: 0, memory: 0, states: 0 };

  private append(blob: 'modules' | 'states', bytes: Uint8Array): BlobRef {
    this[blob].push(bytes as Buffer);
    const ref = { offset: this.at[blob], length: bytes.length, sha256: checksum(bytes) };
    this.at[blob] += bytes.length;
    return ref;
  }

  state(value: unknown): BlobRef {
    return this.append('states', Buffer.from(JSON.stringify(value)));
  }

  guest(content: GuestContent, compression: Compression): GuestManifest {
    const { chunks, data } = encodeMemory(content.memory, compression);
    const storedBytes = chunks.reduce((n, c) => n + c.length, 0);
    const base = this.at.memory;
    this.memory.push(...data);
    this.at.memory += storedBytes;
    return {
      module: { digest: content.moduleDigest, ...this.append('modules', content.module) },
      memory: {
        bytes: content.memory.length,
        chunkBytes,
        storedBytes,
        compression,
        chunks: chunks.map((c) => ({ ...c, offset: c.offset + base })),
      },
      state: this.state(content.state),
    };
  }

  /** In the archive form the blobs follow each other in one body: module, memory, state. */
  get archiveBases() {
    return { modules: 0, memory: this.at.modules, states: this.at.modules + this.at.memory };
  }
}

const header = (source: ImageManifest['source']): Omit<SingleImageManifest, keyof GuestManifest> => ({
  format: imageFormat,
  version: imageVersion,
  createdAt: new Date().toISOString(),
  source,
});

/** Writes a checkpoint image of one guest (atomically: to a temporary name, then renamed). */
export function writeImage(path: string, content: ImageContent, options: WriteOptions): SingleImageManifest {
  const blobs = new BlobWriter();
  const guest = blobs.guest(content, options.compression);
  const manifest: SingleImageManifest = { ...header(content.source), ...guest };
  if (options.archive) rebaseGuest(manifest, blobs.archiveBases);
  store(path, manifest, blobs, options);
  return manifest;
}

/** Writes a checkpoint image of a container of several processes, as writeImage does. */
export function writeContainerImage(
  path: string,
  content: ContainerImageContent,
  options: WriteOptions,
): ContainerImageManifest {
  const blobs = new BlobWriter();
  const processes = content.processes.map((p) => ({ name: p.name, ...blobs.guest(p, options.compression) }));
  const manifest: ContainerImageManifest = {
    ...header(content.source),
    processes,
    container: blobs.state(content.container),
  };
  if (options.archive) {
    const bases = blobs.archiveBases;
    for (const p of manifest.processes) rebaseGuest(p, bases);
    manifest.container.offset += bases.states;
  }
  store(path, manifest, blobs, options);
  return manifest;
}

function rebaseGuest(guest: GuestManifest, bases: BlobWriter['archiveBases']): void {
  guest.module.offset += bases.modules;
  for (const chunk of guest.memory.chunks) chunk.offset += bases.memory;
  guest.state.offset += bases.states;
}

function store(path: string, manifest: ImageManifest, blobs: BlobWriter, options: WriteOptions): void {
  const temp = `${path}.partial-${process.pid}`;
  rmSync(temp, { recursive: true, force: true });
  const writeAll = (file: string, parts: Uint8Array[]) => {
    const fd = openSync(file, 'w');
    try {
      for (const part of parts) writeSync(fd, part);
    } finally {
      closeSync(fd);
    }
  };
  if (options.archive) {
    const json = Buffer.from(JSON.stringify(manifest));
    const length = Buffer.alloc(4);
    length.writeUInt32LE(json.length);
    writeAll(temp, [archiveMagic, length, json, ...blobs.modules, ...blobs.memory, ...blobs.states]);
  } else {
    mkdirSync(temp);
    writeAll(join(temp, partFiles.module), blobs.modules);
    writeAll(join(temp, partFiles.memory), blobs.memory);
    writeAll(join(temp, partFiles.state), blobs.states);
    writeFileSync(join(temp, partFiles.manifest), `${JSON.stringify(manifest, null, 1)}\n`);
  }
  rmSync(path, { recursive: true, force: true });
  renameSync(temp, path);
}

interface Parts {
  module: Uint8Array;
  memory: Uint8Array;
  state: Uint8Array;
}

/** One guest of an image: its module, state and memory, read from the verified parts. */
export class ImageGuest {
  constructor(
    private readonly path: string,
    readonly manifest: GuestManifest,
    private readonly parts: Parts,
  ) {}

  get module(): Uint8Array {
    const { offset, length } = this.manifest.module;
    return this.parts.module.subarray(offset, offset + length);
  }

  state(): unknown {
    return parseState(this.path, this.parts.state, this.manifest.state);
  }

  /** Fills `memory` (at least manifest.memory.bytes long, zeroed) with the checkpointed pages. */
  restoreMemory(memory: Uint8Array): void {
    decodeMemory(memory, this.manifest.memory.chunks, this.parts.memory);
  }
}

/** A checkpoint image whose structure and every checksum were verified on open. */
export class Image {
  private constructor(
    readonly path: string,
    readonly manifest: ImageManifest,
    private readonly parts: Parts,
  ) {}

  static open(path: string): Image {
    if (!existsSync(path)) throw new ImageError('ROAM_IMAGE_NOT_FOUND', `${path}: no such image`);
    const { manifest, module, memory, state } = statSync(path).isDirectory() ? readDirectory(path) : readArchive(path);
    verify(manifest, module, memory, state);
    return new Image(path, manifest, { module, memory, state });
  }

  /** The guest of a one-guest image; an image of a container of several has none. */
  get guest(): ImageGuest {
    const manifest = this.manifest;
    if (isContainerManifest(manifest))
      throw new ImageError('ROAM_IMAGE_NOT_IMAGE', `${this.path}: an image of a container of several processes`);
    return new ImageGuest(this.path, manifest, this.parts);
  }

  /** An image of a container of several processes (else of one guest). */
  get isContainer(): boolean {
    return isContainerManifest(this.manifest);
  }

  /** The processes of a container image, by name; empty for a one-guest image. */
  get processes(): (ImageGuest & { name: string })[] {
    if (!isContainerManifest(this.manifest)) return [];
    return this.manifest.processes.map((p) =>
      Object.assign(new ImageGuest(this.path, p, this.parts), { name: p.name }),
    );
  }

  /** The container's own state, in an image of a container of several. */
  containerState(): unknown {
    if (!isContainerManifest(this.manifest)) return undefined;
    return parseState(this.path, this.parts.state, this.manifest.container);
  }

  get module(): Uint8Array {
    return this.guest.module;
  }

  state(): unknown {
    return this.guest.state();
  }

  restoreMemory(memory: Uint8Array): void {
    this.guest.restoreMemory(memory);
  }
}

function parseState(path: string, blob: Uint8Array, { offset, length }: BlobRef): unknown {
  try {
    return JSON.parse(Buffer.from(blob.subarray(offset, offset + length)).toString('utf8'));
  } catch (error) {
    throw new ImageError('ROAM_IMAGE_CORRUPT', `${path}: image state is not valid JSON`, { cause: error });
  }
}

function parseManifest(path: string, text: string): ImageManifest {
  let value: { format?: unknown; version?: unknown } | null;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ImageError('ROAM_IMAGE_CORRUPT', `${path}: image manifest is corrupt (not JSON)`, { cause: error });
  }
  if (value?.format !== imageFormat)
    throw new ImageError('ROAM_IMAGE_NOT_IMAGE', `${path}: not a Roam checkpoint image`);
  if (typeof value.version !== 'number' || !readableVersions.includes(value.version)) {
    throw new ImageError(
      'ROAM_IMAGE_VERSION',
      `${path}: image format version ${JSON.stringify(value.version)} is not supported (this roam reads versions ${readableVersions.join(', ')})`,
    );
  }
  const checked = checkManifest(value);
  if (!checked.ok) throw new ImageError('ROAM_IMAGE_CORRUPT', `${path}: image manifest is corrupt: ${checked.message}`);
  return checked.value;
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
  const guests = isContainerManifest(manifest)
    ? manifest.processes.map((p) => ({ of: ` of process ${p.name}`, guest: p }))
    : [{ of: '', guest: manifest }];
  for (const { of, guest } of guests) {
    check(`the module${of}`, guest.module, module);
    check(`the state${of}`, guest.state, state);
    for (const chunk of guest.memory.chunks) check(`memory chunk ${chunk.index}${of}`, chunk, memory);
  }
  if (isContainerManifest(manifest)) check("the container's state", manifest.container, state);
}

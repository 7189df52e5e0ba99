import * as v from 'valibot';
import { RoamError } from '../platform/errors.js';
import { check, jsonObject } from '../platform/schema.js';

/**
 * The checkpoint image: a versioned manifest (JSON, readable as it is) and three blobs: the
 * modules, the memory chunks, the states (engine + host, and a container's own). Stored either
 * as a directory (one file per part) or as a single-file archive for transport; both carry the
 * same manifest and checksums.
 *
 * Two shapes, told apart by `processes`:
 * - one guest: `module`, `memory` and `state` at the top (as in version 4);
 * - a container of several processes: `processes`, each with its `name`, `module` (digest),
 *   `memory` and `state`, and `container`, the container's own state (its network's pairs with
 *   their bytes in flight, which process holds each side, the processes' pipes and those that
 *   had ended), whose meaning belongs to the container runtime.
 *
 * The rule: a field an older roam may ignore keeps the version; anything an older roam would
 * misread (a new shape, a changed meaning) bumps it. This roam reads the versions in
 * `readableVersions` and refuses any other with ROAM_IMAGE_VERSION.
 */
export const imageFormat = 'roam-image';
/**
 * 2: WASI host state 2 (fds sharing a description, pipes). 3: green threads in the engine state,
 * the guest's own sockets in host state 3. 4: open files removed while open carry their bytes
 * (ghost). 5: the container's epoch in its state. 6: containers of several processes
 * (`processes`, `container`).
 */
export const imageVersion = 6;
/** Versions 4 and 5 are the one-guest shape of version 6 (a version 4 state has no epoch: 1). */
export const readableVersions: readonly number[] = [4, 5, 6];
/** First bytes of the single-file form, followed by a u32 LE manifest length and the manifest. */
export const archiveMagic = Buffer.from('ROAMIMG\0', 'latin1');
/** Memory is stored in chunks of one wasm page; all-zero chunks are omitted. */
export const chunkBytes = 65536;

export type Compression = 'deflate' | 'none';

const count = v.pipe(v.number(), v.integer(), v.minValue(0));
/** Offset within the blob's file (directory form) or the archive body (archive form). */
const blobEntries = { offset: count, length: count, sha256: v.string() };
const BlobRef = jsonObject(blobEntries, 'a blob reference {offset, length, sha256}');
export type BlobRef = v.InferOutput<typeof BlobRef>;

const MemoryChunkRef = jsonObject(
  {
    ...blobEntries,
    /** Chunk number within linear memory (address / chunkBytes). */
    index: count,
    /** Whether this chunk's bytes are deflated (incompressible chunks are stored raw). */
    deflated: v.boolean(),
  },
  'a memory chunk',
);
export type MemoryChunkRef = v.InferOutput<typeof MemoryChunkRef>;

/** One guest: its module, its linear memory, its state (engine + host). */
const guestEntries = {
  module: jsonObject({ digest: v.string(), ...blobEntries }, 'a module {digest, offset, length, sha256}'),
  memory: jsonObject(
    {
      /** Size of linear memory in bytes. */
      bytes: count,
      chunkBytes: v.literal(chunkBytes),
      /** Bytes on disk for all chunks. */
      storedBytes: count,
      compression: v.picklist(['deflate', 'none']),
      chunks: v.array(MemoryChunkRef),
    },
    'a memory description',
  ),
  state: BlobRef,
};
const GuestManifest = jsonObject(guestEntries, 'a guest');
export type GuestManifest = v.InferOutput<typeof GuestManifest>;

const commonEntries = {
  format: v.literal(imageFormat),
  version: v.number(),
  createdAt: v.string(),
  /** Where the snapshot was taken: informational, any ISA can restore it. */
  source: jsonObject({ isa: v.string(), node: v.string(), host: v.string() }, 'a source {isa, node, host}'),
};

const ProcessManifest = jsonObject({ name: v.string(), ...guestEntries }, 'a process');
export type ProcessManifest = v.InferOutput<typeof ProcessManifest>;

/** An image of one guest. */
const SingleImageManifest = jsonObject({ ...commonEntries, ...guestEntries }, 'an image manifest');
export type SingleImageManifest = v.InferOutput<typeof SingleImageManifest>;

/** An image of a container of several processes: those still running when it was taken. */
const ContainerImageManifest = jsonObject(
  { ...commonEntries, processes: v.array(ProcessManifest), container: BlobRef },
  'an image manifest',
);
export type ContainerImageManifest = v.InferOutput<typeof ContainerImageManifest>;

export type ImageManifest = SingleImageManifest | ContainerImageManifest;

export const isContainerManifest = (m: ImageManifest): m is ContainerImageManifest => 'processes' in m;

/** The manifest's shape, checked (the caller checked its format and version). */
export function checkManifest(value: unknown): { ok: true; value: ImageManifest } | { ok: false; message: string } {
  const container = typeof value === 'object' && value !== null && 'processes' in value;
  return container ? check(ContainerImageManifest, value) : check(SingleImageManifest, value);
}

/** Names of the parts in the directory form. */
export const partFiles = {
  manifest: 'manifest.json',
  module: 'module.wasm',
  memory: 'memory.bin',
  state: 'state.json',
} as const;

/** Why an image cannot be read; the code tells the failures apart. */
export type ImageErrorCode =
  /** Nothing at the path. */
  | 'ROAM_IMAGE_NOT_FOUND'
  /** Something is there, but not a Roam checkpoint image. */
  | 'ROAM_IMAGE_NOT_IMAGE'
  /** A Roam image of a format version this roam does not read. */
  | 'ROAM_IMAGE_VERSION'
  /** A Roam image that is damaged: truncated, missing a part, a checksum mismatch, bad JSON. */
  | 'ROAM_IMAGE_CORRUPT';

/** A checkpoint image that cannot be used; nothing runs from it. */
export class ImageError extends RoamError {
  constructor(
    readonly code: ImageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

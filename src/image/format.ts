import { RoamError } from '../platform/errors.js';

/**
 * The checkpoint image: a versioned manifest and three blobs (the module, the memory chunks, the
 * engine+host state). Stored either as a directory (one file per part) or as a single-file
 * archive for transport; both carry the same manifest and checksums.
 */
export const imageFormat = 'roam-image';
/** 2: WASI host state 2 (fds sharing a description, pipes). 3: green threads in the engine state, the guest's own sockets in host state 3. 4: open files removed while open carry their bytes (ghost). 5: the container's epoch in its state. */
export const imageVersion = 5;
/** First bytes of the single-file form, followed by a u32 LE manifest length and the manifest. */
export const archiveMagic = Buffer.from('ROAMIMG\0', 'latin1');
/** Memory is stored in chunks of one wasm page; all-zero chunks are omitted. */
export const chunkBytes = 65536;

export type Compression = 'deflate' | 'none';

export interface BlobRef {
  /** Offset within the blob's file (directory form) or the archive body (archive form). */
  offset: number;
  length: number;
  sha256: string;
}

export interface MemoryChunkRef extends BlobRef {
  /** Chunk number within linear memory (address / chunkBytes). */
  index: number;
  /** Whether this chunk's bytes are deflated (incompressible chunks are stored raw). */
  deflated: boolean;
}

export interface ImageManifest {
  format: typeof imageFormat;
  version: number;
  createdAt: string;
  /** Where the snapshot was taken: informational, any ISA can restore it. */
  source: { isa: string; node: string; host: string };
  module: { digest: string } & BlobRef;
  memory: {
    /** Size of linear memory in bytes. */
    bytes: number;
    chunkBytes: number;
    /** Bytes on disk for all chunks. */
    storedBytes: number;
    compression: Compression;
    chunks: MemoryChunkRef[];
  };
  state: BlobRef;
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

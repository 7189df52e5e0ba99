import { createHash } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { type Compression, chunkBytes, ImageError, type MemoryChunkRef } from './format.js';

const zeroChunk = Buffer.alloc(chunkBytes);

export function checksum(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 32);
}

/** Splits memory into chunks, drops all-zero ones and compresses the rest where that pays. */
export function encodeMemory(
  memory: Uint8Array,
  compression: Compression,
): { chunks: MemoryChunkRef[]; data: Buffer[] } {
  const chunks: MemoryChunkRef[] = [];
  const data: Buffer[] = [];
  let offset = 0;
  for (let index = 0; index * chunkBytes < memory.length; index++) {
    const raw = Buffer.from(
      memory.buffer,
      memory.byteOffset + index * chunkBytes,
      Math.min(chunkBytes, memory.length - index * chunkBytes),
    );
    if (raw.equals(zeroChunk.subarray(0, raw.length))) continue;
    let stored: Buffer = raw;
    let deflated = false;
    if (compression === 'deflate' && worthDeflating(raw)) {
      const packed = deflateRawSync(raw, { level: 1 });
      if (packed.length < raw.length * 0.9) {
        stored = packed;
        deflated = true;
      }
    }
    // Copy raw chunks: the caller may resume the guest (and change memory) before writing.
    if (!deflated) stored = Buffer.from(raw);
    chunks.push({ index, offset, length: stored.length, sha256: checksum(stored), deflated });
    data.push(stored);
    offset += stored.length;
  }
  return { chunks, data };
}

/** Deflate crawls through incompressible data (~40 MB/s): judge a chunk by four 1 KiB samples. */
function worthDeflating(raw: Buffer): boolean {
  if (raw.length < 4096) return true;
  const step = raw.length / 4;
  const sample = Buffer.concat([0, 1, 2, 3].map((i) => raw.subarray(i * step, i * step + 1024)));
  return deflateRawSync(sample, { level: 1 }).length < 0.9 * sample.length;
}

/** Writes every chunk into `memory` (already sized and zeroed); the reader verified the checksums. */
export function decodeMemory(memory: Uint8Array, chunks: MemoryChunkRef[], blob: Uint8Array): void {
  for (const chunk of chunks) {
    const stored = blob.subarray(chunk.offset, chunk.offset + chunk.length);
    const raw = chunk.deflated ? inflateRawSync(stored) : stored;
    if (raw.length > chunkBytes || chunk.index * chunkBytes + raw.length > memory.length) {
      throw new ImageError(
        'ROAM_IMAGE_CORRUPT',
        `image is corrupt: memory chunk ${chunk.index} lies outside linear memory`,
      );
    }
    memory.set(raw, chunk.index * chunkBytes);
  }
}

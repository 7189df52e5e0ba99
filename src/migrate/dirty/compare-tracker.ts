import type { DirtyRange, DirtyTracker, ScanOptions } from './tracker.js';

/** Granularity of the comparison: a Wasm page, also the image's chunk size. */
export const compareChunkBytes = 65536;

/**
 * Pure-TypeScript dirty tracking: keeps a shadow copy of what was sent and compares memory to it
 * chunk by chunk (Buffer.compare is a native memcmp). Exact, works everywhere (also under
 * qemu-user, which has no userfaultfd), and costs a second copy of memory plus one pass over it per
 * scan: a scan of a stopped guest therefore adds its memcmp time to the downtime.
 */
export class CompareTracker implements DirtyTracker {
  readonly method = 'compare' as const;
  private shadow = Buffer.alloc(0);

  scan(memory: Uint8Array, options: ScanOptions = {}): DirtyRange[] {
    if (memory.length > this.shadow.length) this.growShadow(memory.length);
    const live = Buffer.from(memory.buffer, memory.byteOffset, memory.length);
    const ranges: DirtyRange[] = [];
    for (let offset = 0; offset < memory.length; offset += compareChunkBytes) {
      const end = Math.min(offset + compareChunkBytes, memory.length);
      if (live.compare(this.shadow, offset, end, offset, end) === 0) continue;
      // A running guest may be writing this chunk right now: copy first, then report the copy.
      if (!options.stopped) live.copy(this.shadow, offset, offset, end);
      const source = options.stopped ? live : this.shadow;
      const previous = ranges[ranges.length - 1];
      if (previous && previous.offset + previous.bytes.length === offset) {
        ranges[ranges.length - 1] = { offset: previous.offset, bytes: source.subarray(previous.offset, end) };
      } else {
        ranges.push({ offset, bytes: source.subarray(offset, end) });
      }
    }
    return ranges;
  }

  close(): void {
    this.shadow = Buffer.alloc(0);
  }

  private growShadow(length: number): void {
    const grown = Buffer.alloc(length);
    this.shadow.copy(grown);
    this.shadow = grown;
  }
}

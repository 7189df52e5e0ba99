import { type NativeAddon, type NativeTrackHandle, nativeAddon, nativeDirtyTracking } from '../../native/addon.js';
import type { DirtyRange, DirtyTracker, ScanOptions } from './tracker.js';

/** The first scan looks for non-zero pages block by block, skipping all-zero blocks this big at once. */
const zeroBlockBytes = 65536;
const zeros = Buffer.alloc(zeroBlockBytes);
/** A copy buffer larger than this is given back when a scan needs less than an eighth of it. */
const keepCopyBytes = 64 * 1024 * 1024;
/** The memory each open tracker last saw, referenced so that it stays mapped while its pages are tracked. */
const retained = new WeakMap<UffdWpTracker, Uint8Array>();

/**
 * Exact dirty tracking by the kernel (native addon): the memory is write-protected through a
 * userfaultfd in asynchronous mode, so the first write to each host page (4 KiB) since the last
 * scan is recorded in its page-table entry without stopping the writer, and PAGEMAP_SCAN lists and
 * re-protects those pages in one walk. A scan costs a walk of the page tables plus copying the
 * pages written, not a pass over the whole memory; its granularity is the host page, finer than
 * the compare tracker's 64 KiB chunks. Linux >= 6.7 only (not under qemu-user).
 */
export class UffdWpTracker implements DirtyTracker {
  readonly method = 'userfaultfd-wp' as const;
  private handle: NativeTrackHandle | undefined;
  /** Bytes registered with the kernel. */
  private trackedLength: number;
  /** Bytes covered by previous scans: beyond, memory is new and scanned for non-zero pages. */
  private scannedLength = 0;
  /** Copies of the ranges returned by the last scan. */
  private copy: Buffer = Buffer.alloc(0);

  private constructor(
    private readonly addon: NativeAddon,
    handle: NativeTrackHandle,
    memory: Uint8Array,
  ) {
    this.handle = handle;
    this.trackedLength = memory.length;
    retained.set(this, memory);
  }

  /**
   * Starts tracking `memory` (a view of a whole Wasm linear memory) right away, before the first
   * scan reads it, so that no write is missed; undefined when exact tracking is not available here.
   */
  static create(memory: Uint8Array): UffdWpTracker | undefined {
    if (!nativeDirtyTracking().ok) return undefined;
    const addon = nativeAddon();
    if (!addon) return undefined;
    try {
      return new UffdWpTracker(addon, addon.track(memory), memory);
    } catch {
      return undefined;
    }
  }

  scan(memory: Uint8Array, options: ScanOptions = {}): DirtyRange[] {
    if (!this.handle) throw new Error('UffdWpTracker: scan() after close()');
    const length = memory.length;
    if (length < this.scannedLength)
      throw new Error(`UffdWpTracker: memory shrank from ${this.scannedLength} to ${length} bytes`);
    let everything = false;
    if (length > this.trackedLength) {
      try {
        this.addon.extend(this.handle, memory);
      } catch (error) {
        if ((error as { code?: unknown }).code !== 'ERR_ROAM_MEMORY_MOVED') throw error;
        // Grown by moving (not done by V8, which reserves the maximum up front): the writes since
        // the last scan are unknown, so track the new place and resend all of it.
        this.addon.untrack(this.handle);
        this.handle = undefined;
        this.handle = this.addon.track(memory);
        everything = true;
      }
      this.trackedLength = length;
    }
    retained.set(this, memory);
    // Collect (and re-protect) before reading: a write after this point is reported next time.
    const written = this.addon.collectWritten(this.handle);
    const spans: number[] = [];
    if (everything) {
      if (length > 0) spans.push(0, length);
    } else {
      const pageSize = this.addon.pageSize;
      const old = this.scannedLength;
      for (let i = 0; i < written.length; i += 2) {
        const start = written[i]! * pageSize;
        if (start >= old) break; // the new part is scanned whole below
        addSpan(spans, start, Math.min(written[i + 1]! * pageSize, old));
      }
      if (length > old) nonZeroSpans(memory, old, length, pageSize, spans);
    }
    this.scannedLength = length;
    if (options.stopped) {
      const ranges: DirtyRange[] = [];
      for (let i = 0; i < spans.length; i += 2)
        ranges.push({ offset: spans[i]!, bytes: memory.subarray(spans[i], spans[i + 1]) });
      return ranges;
    }
    return this.copyOut(memory, spans);
  }

  written(memory: Uint8Array): { offset: number; length: number }[] {
    if (!this.handle) throw new Error('UffdWpTracker: written() after close()');
    retained.set(this, memory);
    const pages = this.addon.collectWritten(this.handle);
    const pageSize = this.addon.pageSize;
    const end = Math.min(memory.length, this.trackedLength);
    const spans: { offset: number; length: number }[] = [];
    for (let i = 0; i < pages.length; i += 2) {
      const start = pages[i]! * pageSize;
      if (start >= end) break;
      spans.push({ offset: start, length: Math.min(pages[i + 1]! * pageSize, end) - start });
    }
    return spans;
  }

  close(): void {
    if (this.handle) this.addon.untrack(this.handle);
    this.handle = undefined;
    retained.delete(this);
    this.copy = Buffer.alloc(0);
  }

  /** A new copy buffer, its pages faulted in at once (several times faster than by the copy). */
  private freshBuffer(length: number): Buffer {
    const buffer = Buffer.allocUnsafeSlow(length);
    this.addon.populate(buffer, 0, length);
    return buffer;
  }

  /** Copies the spans of memory into the tracker's buffer and returns them as ranges. */
  private copyOut(memory: Uint8Array, spans: number[]): DirtyRange[] {
    let total = 0;
    for (let i = 0; i < spans.length; i += 2) total += spans[i + 1]! - spans[i]!;
    if (total > this.copy.length) {
      this.copy = this.freshBuffer(Math.max(total, Math.min(2 * this.copy.length, memory.length)));
    } else if (this.copy.length > keepCopyBytes && total < this.copy.length / 8) {
      this.copy = this.freshBuffer(total);
    }
    const live = Buffer.from(memory.buffer, memory.byteOffset, memory.length);
    const ranges: DirtyRange[] = [];
    let at = 0;
    for (let i = 0; i < spans.length; i += 2) {
      const start = spans[i]!;
      const end = spans[i + 1]!;
      live.copy(this.copy, at, start, end);
      ranges.push({ offset: start, bytes: this.copy.subarray(at, at + end - start) });
      at += end - start;
    }
    return ranges;
  }
}

/** Appends [start, end) to a flat list of spans in increasing order, merging it with an adjacent last one. */
function addSpan(spans: number[], start: number, end: number): void {
  if (spans.length > 0 && spans[spans.length - 1] === start) spans[spans.length - 1] = end;
  else spans.push(start, end);
}

/** Appends the non-zero pages of memory[from, to), coalesced, to spans. */
function nonZeroSpans(memory: Uint8Array, from: number, to: number, pageSize: number, spans: number[]): void {
  const live = Buffer.from(memory.buffer, memory.byteOffset, memory.length);
  for (let block = from; block < to; block += zeroBlockBytes) {
    const blockEnd = Math.min(block + zeroBlockBytes, to);
    if (live.compare(zeros, 0, blockEnd - block, block, blockEnd) === 0) continue;
    for (let page = block; page < blockEnd; page += pageSize) {
      const pageEnd = Math.min(page + pageSize, blockEnd);
      if (live.compare(zeros, 0, pageEnd - page, page, pageEnd) !== 0) addSpan(spans, page, pageEnd);
    }
  }
}

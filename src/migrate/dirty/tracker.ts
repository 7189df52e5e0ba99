/**
 * Finds the parts of a running guest's linear memory written since the last scan, so pre-copy
 * resends only those. Implementations: exact kernel tracking through the native addon
 * (userfaultfd write-protect + PAGEMAP_SCAN) and a pure-TypeScript comparison against the last
 * copy sent.
 */
export interface DirtyTracker {
  /** How it tracks, for node facts and migration reports. */
  readonly method: DirtyTrackingMethod;
  /**
   * The ranges to (re)send, with their bytes as of this scan, in increasing offset order. The first
   * scan, and the first scan after memory grew (for the new part), return every range that is not
   * all zero; later scans return what was written since the previous scan. `memory` is a view of
   * the whole current linear memory; it may be written concurrently by the guest: a range written
   * during the scan is reported again by the next one. The returned bytes stay valid and unchanged
   * until the next scan() or close().
   */
  scan(memory: Uint8Array, options?: ScanOptions): DirtyRange[];
  /**
   * Where the guest wrote since tracking started (or the last scan or call), without reading
   * memory or copying anything: post-copy's hot set. Only trackers that learn it for free have it
   * (the kernel's); a comparison would need a copy of the whole memory.
   */
  written?(memory: Uint8Array): { offset: number; length: number }[];
  /** Stops tracking and frees what the tracker holds (e.g. a shadow copy, a userfaultfd). */
  close(): void;
}

export interface ScanOptions {
  /**
   * The guest is stopped and stays stopped until the returned bytes are sent: they may then be
   * views of memory itself instead of copies (the final round of a migration).
   */
  stopped?: boolean;
}

export type DirtyTrackingMethod = 'userfaultfd-wp' | 'compare';

export interface DirtyRange {
  offset: number;
  bytes: Uint8Array;
}

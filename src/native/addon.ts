import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../platform/paths.js';

/**
 * The optional native addon (native/src/: dirty tracking, bulk page population, post-copy's lazy restore; built by scripts/build-native into
 * native/build/Release/roam_native.node). Absent when it was not built (no compiler, not Linux,
 * ROAM_SKIP_NATIVE=1) or cannot load (e.g. an x64 build under a foreign-ISA Node in qemu-user):
 * Roam then uses its pure-TypeScript paths. ROAM_NO_NATIVE=1 ignores a built addon.
 */
export const addonPath = join(packageRoot, 'native', 'build', 'Release', 'roam_native.node');

declare const trackHandleBrand: unique symbol;
/** A userfaultfd tracking one memory, from track(); freed by untrack() (or when collected). */
export type NativeTrackHandle = { readonly [trackHandleBrand]: true };

export interface NativeAddon {
  /** Host page size in bytes: the unit of collectWritten()'s page indices. */
  readonly pageSize: number;
  /** Whether exact dirty tracking works here; tried for real once per process (reason when not). */
  probe(): { ok: boolean; reason?: string };
  /**
   * Starts tracking writes to the bytes of `view` (whose start and length are page-aligned, as a
   * Wasm memory's are): registers them with a userfaultfd in async write-protect mode and
   * write-protects them. Throws (code ERR_ROAM_NATIVE) with the failing step and errno text.
   */
  track(view: Uint8Array): NativeTrackHandle;
  /**
   * The memory grew: tracks the part of `view` beyond the tracked length. Throws with code
   * ERR_ROAM_MEMORY_MOVED when `view` starts at another address than the tracked memory.
   */
  extend(handle: NativeTrackHandle, view: Uint8Array): void;
  /**
   * Pages written since the previous call (or since track/extend), as [start, end) page-index
   * pairs in increasing order, adjacent ones merged; they are write-protected again in the same
   * kernel walk, so a write racing with the call is reported now or by the next call.
   */
  collectWritten(handle: NativeTrackHandle): Uint32Array;
  /** Stops tracking and closes the userfaultfd; idempotent. */
  untrack(handle: NativeTrackHandle): void;
  /**
   * Faults in view[offset, offset+length) for writing in one kernel call (MADV_POPULATE_WRITE),
   * contents kept; false where the kernel cannot (the copy then takes the faults itself).
   */
  populate(view: Uint8Array, offset: number, length: number): boolean;
  /** Whether userfaultfd missing mode (post-copy's lazy restore) works here; tried once per process. */
  probeLazyRestore(): { ok: boolean; reason?: string };
  /**
   * Post-copy's destination (native/src/postcopy.c): drops the `missing` [first, end) ranges of
   * 64 KiB granules of `view` and, on a native thread, serves the faults on them over the page
   * channels on sockets `pushFd` and `faultFd` (duplicated), where `ticket` must arrive first. `onEnd` is called once:
   * with null when every page arrived, else with the error (the memory then stays registered, so
   * the guest blocks instead of reading zeros).
   */
  lazyRestore(
    view: Uint8Array,
    missing: Uint32Array,
    pushFd: number,
    faultFd: number,
    ticket: Uint8Array,
    onEnd: (error: string | null, stats: LazyRestoreStats) => void,
  ): void;
}

/** What the destination's lazy restore did, from the start of post-copy to full residency. */
export interface LazyRestoreStats {
  /** Guest faults on missing pages (several may wait for one granule). */
  faults: number;
  requestedBytes: number;
  receivedBytes: number;
  /** Granules the source found all zero (sent as a header alone). */
  zeroBytes: number;
  /** Bytes that arrived twice (pushed and asked for at once), or were already there. */
  duplicateBytes: number;
  /** How long a fault waited for its granule, mean and max. */
  faultWaitMsMean: number;
  faultWaitMsMax: number;
  ms: number;
}

let cached: { addon: NativeAddon | undefined; error: string } | undefined;

function load(): { addon: NativeAddon | undefined; error: string } {
  if (process.env.ROAM_NO_NATIVE === '1') return { addon: undefined, error: 'disabled by ROAM_NO_NATIVE=1' };
  if (process.platform !== 'linux') return { addon: undefined, error: `not available on ${process.platform}` };
  if (!existsSync(addonPath)) return { addon: undefined, error: 'native addon not built (scripts/build-native)' };
  const built = elfArch(addonPath);
  if (built && built !== process.arch)
    return { addon: undefined, error: `native addon built for ${built}, this Node is ${process.arch}` };
  try {
    const loaded = createRequire(import.meta.url)(addonPath) as Partial<NativeAddon>;
    for (const name of [
      'probe',
      'track',
      'extend',
      'collectWritten',
      'untrack',
      'populate',
      'probeLazyRestore',
      'lazyRestore',
    ] as const) {
      if (typeof loaded[name] !== 'function') return { addon: undefined, error: `native addon lacks ${name}()` };
    }
    if (typeof loaded.pageSize !== 'number') return { addon: undefined, error: 'native addon lacks pageSize' };
    return { addon: loaded as NativeAddon, error: '' };
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return { addon: undefined, error: `native addon failed to load: ${message}` };
  }
}

/** The CPU an ELF shared object was built for, in process.arch terms (undefined if unknown). */
function elfArch(path: string): string | undefined {
  const header = Buffer.alloc(20);
  try {
    const fd = openSync(path, 'r');
    try {
      if (readSync(fd, header, 0, 20, 0) < 20) return undefined;
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  if (header.readUInt32BE(0) !== 0x7f454c46) return undefined; // "\x7fELF"
  const machine = header[5] === 2 ? header.readUInt16BE(18) : header.readUInt16LE(18);
  const byMachine: Record<number, string> = {
    3: 'ia32',
    40: 'arm',
    62: 'x64',
    183: 'arm64',
    21: 'ppc64',
    22: 's390x',
    243: 'riscv64',
  };
  return byMachine[machine];
}

/** The native addon, or undefined when it is missing or does not load; never throws. Cached. */
export function nativeAddon(): NativeAddon | undefined {
  cached ??= load();
  return cached.addon;
}

let tracking: { ok: boolean; reason: string } | undefined;

/** Whether exact (userfaultfd write-protect) dirty tracking is usable here, and why not. Cached. */
export function nativeDirtyTracking(): { ok: boolean; reason: string } {
  if (tracking) return tracking;
  const addon = nativeAddon();
  if (!addon) {
    tracking = { ok: false, reason: cached?.error ?? 'native addon not available' };
  } else {
    try {
      const probe = addon.probe();
      tracking = probe.ok ? { ok: true, reason: '' } : { ok: false, reason: probe.reason ?? 'probe failed' };
    } catch (error) {
      tracking = { ok: false, reason: `probe threw: ${error instanceof Error ? error.message : String(error)}` };
    }
  }
  return tracking;
}

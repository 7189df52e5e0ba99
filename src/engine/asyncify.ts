import type { ModuleManifest } from '../build/manifest.js';
import { RoamError } from '../platform/errors.js';

/** Binaryen Asyncify's runtime states (asyncify_get_state). */
export enum AsyncifyState {
  Normal = 0,
  Unwinding = 1,
  Rewinding = 2,
}

interface AsyncifyExports {
  asyncify_start_unwind(data: number): void;
  asyncify_stop_unwind(): void;
  asyncify_start_rewind(data: number): void;
  asyncify_stop_rewind(): void;
  asyncify_get_state(): number;
}

/** The unwound guest stack did not fit the buffer `roam build` reserved. */
export class AsyncifyBufferOverflow extends RoamError {
  readonly code = 'ROAM_ASYNCIFY_OVERFLOW';
}

/** Where a stack unwinds to: Asyncify's {current, end} header, then the unwound frames. */
export interface AsyncifyBuffer {
  address: number;
  bytes: number;
}

/**
 * Drives Binaryen's Asyncify exports. Each green thread unwinds into a buffer of its own: the main
 * thread into the one `roam build` reserved, the others at the bottom of their stack blocks.
 */
export class Asyncify {
  private readonly exports: AsyncifyExports;
  readonly mainBuffer: AsyncifyBuffer;
  /** The shadow stack pointer (__stack_pointer), switched with the running thread. */
  readonly stackPointer: WebAssembly.Global;
  private readonly resume: ModuleManifest['resume'];
  private rewindingNow = false;

  constructor(
    private readonly rawExports: WebAssembly.Exports,
    private readonly memory: WebAssembly.Memory,
    manifest: ModuleManifest,
  ) {
    this.exports = rawExports as unknown as AsyncifyExports;
    this.mainBuffer = manifest.asyncifyBuffer;
    this.stackPointer = rawExports[manifest.stackPointer] as WebAssembly.Global;
    this.resume = manifest.resume;
  }

  /**
   * What a call from the host into `entry` must enter: while rewinding, the entry's twin, since
   * the code that runs cannot rewind (src/build/resume-clones.ts); a module without twins
   * rewinds through its own entries.
   */
  rewindEntry(entry: 'start' | 'threadStart'): ((...args: number[]) => void) | undefined {
    const name = this.resume?.[entry];
    return this.rewindingNow && name ? (this.rawExports[name] as () => void) : undefined;
  }

  /** The table an indirect call from the host goes through while rewinding, if not the module's own. */
  rewindTable(): WebAssembly.Table | undefined {
    const name = this.resume?.table;
    return this.rewindingNow && name ? (this.rawExports[name] as WebAssembly.Table) : undefined;
  }

  /** Between startRewind and stopRewind: known here, so a host call need not ask the guest. */
  get rewinding(): boolean {
    return this.rewindingNow;
  }

  get state(): AsyncifyState {
    return this.exports.asyncify_get_state() as AsyncifyState;
  }

  /** Called from inside an import: the guest returns all the way out, saving its frames. */
  startUnwind(buffer: AsyncifyBuffer): void {
    // Guest memory is little-endian on every host (s390x included): go through a DataView.
    const header = new DataView(this.memory.buffer, buffer.address, 8);
    header.setUint32(0, buffer.address + 8, true);
    // The buffer shares the stack region: never write into the live part of the stack.
    header.setUint32(4, Math.min(buffer.address + buffer.bytes, this.stackPointer.value as number), true);
    this.exports.asyncify_start_unwind(buffer.address);
  }

  stopUnwind(buffer: AsyncifyBuffer): void {
    this.exports.asyncify_stop_unwind();
    const header = new DataView(this.memory.buffer, buffer.address, 8);
    if (header.getUint32(0, true) > header.getUint32(4, true)) {
      throw new AsyncifyBufferOverflow(
        'the guest stack outgrew the Asyncify buffer: rebuild with a larger --asyncify-buffer or stack',
      );
    }
  }

  /** Rewinds from the frames saved in the buffer (after an unwind, or a restore of one); they pop off its end. */
  startRewind(buffer: AsyncifyBuffer): void {
    this.exports.asyncify_start_rewind(buffer.address);
    this.rewindingNow = true;
  }

  stopRewind(): void {
    this.exports.asyncify_stop_rewind();
    this.rewindingNow = false;
  }

  /** Bytes of saved frames after an unwind. */
  usedBytes(buffer: AsyncifyBuffer): number {
    return new DataView(this.memory.buffer, buffer.address, 4).getUint32(0, true) - buffer.address - 8;
  }
}

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

/**
 * Drives Binaryen's Asyncify exports over the buffer `roam build` reserved in linear memory.
 * The buffer starts with Asyncify's {current, end} header; the unwound frames follow it.
 */
export class Asyncify {
  private readonly exports: AsyncifyExports;

  private readonly buffer: ModuleManifest['asyncifyBuffer'];
  private readonly stackPointer: WebAssembly.Global;

  constructor(
    exports: WebAssembly.Exports,
    private readonly memory: WebAssembly.Memory,
    manifest: ModuleManifest,
  ) {
    this.exports = exports as unknown as AsyncifyExports;
    this.buffer = manifest.asyncifyBuffer;
    this.stackPointer = exports[manifest.stackPointer] as WebAssembly.Global;
  }

  get state(): AsyncifyState {
    return this.exports.asyncify_get_state() as AsyncifyState;
  }

  /** Called from inside an import: the guest returns all the way out, saving its frames. */
  startUnwind(): void {
    // Guest memory is little-endian on every host (s390x included): go through a DataView.
    const header = new DataView(this.memory.buffer, this.buffer.address, 8);
    header.setUint32(0, this.buffer.address + 8, true);
    // The buffer shares the stack region: never write into the live part of the stack.
    header.setUint32(4, Math.min(this.buffer.address + this.buffer.bytes, this.stackPointer.value as number), true);
    this.exports.asyncify_start_unwind(this.buffer.address);
  }

  stopUnwind(): void {
    this.exports.asyncify_stop_unwind();
    const header = new DataView(this.memory.buffer, this.buffer.address, 8);
    if (header.getUint32(0, true) > header.getUint32(4, true)) {
      throw new AsyncifyBufferOverflow(
        'the guest stack outgrew the Asyncify buffer: rebuild with a larger --asyncify-buffer or stack',
      );
    }
  }

  /** Rewinds from the frames saved in the buffer (after an unwind, or a restore of one); they pop off its end. */
  startRewind(): void {
    this.exports.asyncify_start_rewind(this.buffer.address);
  }

  stopRewind(): void {
    this.exports.asyncify_stop_rewind();
  }

  /** Bytes of saved frames after an unwind. */
  usedBytes(): number {
    return new DataView(this.memory.buffer, this.buffer.address, 4).getUint32(0, true) - this.buffer.address - 8;
  }
}

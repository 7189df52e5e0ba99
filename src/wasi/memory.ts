import { Errno, Size } from './constants.js';
import { WasiError } from './errors.js';

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Typed access to the guest's linear memory. memory.grow detaches the old ArrayBuffer, so the
 * views are rebuilt whenever memory.buffer is no longer the one they were made for.
 */
export class GuestMemory {
  private memory: WebAssembly.Memory | undefined;
  private buffer: ArrayBufferLike | undefined;
  private dataView = new DataView(new ArrayBuffer(0));
  private u8 = new Uint8Array(0);

  bind(memory: WebAssembly.Memory): void {
    this.memory = memory;
    this.buffer = undefined;
  }

  /**
   * The view over current memory, once [ptr, ptr+size) is known to lie inside it: a guest pointer
   * out of bounds is the guest's fault (EFAULT), never a RangeError from the host.
   */
  private view(ptr: number, size: number): DataView {
    if (this.memory === undefined) throw new Error('WASI host: bindMemory() was not called');
    const buffer = this.memory.buffer;
    if (buffer !== this.buffer) {
      this.buffer = buffer;
      this.dataView = new DataView(buffer);
      this.u8 = new Uint8Array(buffer);
    }
    if (!(ptr >= 0 && size >= 0 && ptr + size <= this.u8.length)) throw new WasiError(Errno.FAULT);
    return this.dataView;
  }

  getU8(ptr: number): number {
    return this.view(ptr, 1).getUint8(ptr);
  }
  getU16(ptr: number): number {
    return this.view(ptr, 2).getUint16(ptr, true);
  }
  getU32(ptr: number): number {
    return this.view(ptr, 4).getUint32(ptr, true);
  }
  getU64(ptr: number): bigint {
    return this.view(ptr, 8).getBigUint64(ptr, true);
  }
  setU8(ptr: number, value: number): void {
    this.view(ptr, 1).setUint8(ptr, value);
  }
  setU16(ptr: number, value: number): void {
    this.view(ptr, 2).setUint16(ptr, value, true);
  }
  setU32(ptr: number, value: number): void {
    this.view(ptr, 4).setUint32(ptr, value, true);
  }
  setU64(ptr: number, value: bigint): void {
    this.view(ptr, 8).setBigUint64(ptr, BigInt.asUintN(64, value), true);
  }

  /** A live view of guest bytes [ptr, ptr+len); WasiError(FAULT) when out of bounds. */
  bytes(ptr: number, len: number): Uint8Array {
    this.view(ptr, len);
    return this.u8.subarray(ptr, ptr + len);
  }

  write(ptr: number, data: Uint8Array): void {
    this.bytes(ptr, data.length).set(data);
  }

  /** A UTF-8 string from guest memory (copied first: TextDecoder refuses shared memory). */
  string(ptr: number, len: number): string {
    try {
      return decoder.decode(this.bytes(ptr, len).slice());
    } catch (e) {
      if (e instanceof TypeError) throw new WasiError(Errno.ILSEQ);
      throw e;
    }
  }

  /** The buffers of an iovec/ciovec array, as live views into guest memory. */
  iovecs(ptr: number, count: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const at = ptr + i * Size.IOVEC;
      out.push(this.bytes(this.getU32(at), this.getU32(at + 4)));
    }
    return out;
  }
}

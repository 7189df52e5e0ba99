import { closeSync, openSync, readSync } from 'node:fs';

/** Small readers of the wasm binary format, for what binaryen.js does not expose. */

interface Section {
  id: number;
  /** Offset of the section id byte. */
  start: number;
  bodyStart: number;
  end: number;
}

function* sections(bytes: Uint8Array): Generator<Section> {
  let pos = 8; // magic + version
  while (pos < bytes.length) {
    const id = bytes[pos]!;
    const [size, bodyStart] = readLeb(bytes, pos + 1);
    yield { id, start: pos, bodyStart, end: bodyStart + size };
    pos = bodyStart + size;
  }
}

export function hasCustomSection(bytes: Uint8Array, name: string): boolean {
  for (const section of sections(bytes)) {
    if (section.id !== 0) continue;
    const [length, nameStart] = readLeb(bytes, section.bodyStart);
    if (new TextDecoder().decode(bytes.subarray(nameStart, nameStart + length)) === name) return true;
  }
  return false;
}

/** [start, end) of every active data segment with a constant offset in memory 0. */
export function activeDataSegments(bytes: Uint8Array): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  for (const section of sections(bytes)) {
    if (section.id !== 11) continue;
    let [count, pos] = readLeb(bytes, section.bodyStart);
    for (; count > 0; count--) {
      const [flags, afterFlags] = readLeb(bytes, pos);
      pos = afterFlags;
      let start: number | undefined;
      if (flags === 0 || flags === 2) {
        if (flags === 2) pos = readLeb(bytes, pos)[1]; // memory index
        if (bytes[pos] === 0x41) {
          const [value, afterValue] = readSleb(bytes, pos + 1);
          start = value >>> 0;
          pos = afterValue;
        } else if (bytes[pos] === 0x23) {
          pos = readLeb(bytes, pos + 1)[1]; // global.get: placed at instantiation, not known here
        } else {
          throw new Error('unsupported data segment offset expression');
        }
        if (bytes[pos++] !== 0x0b) throw new Error('unsupported data segment offset expression');
      } else if (flags !== 1) {
        throw new Error(`unknown data segment kind ${flags}`);
      }
      const [length, afterLength] = readLeb(bytes, pos);
      pos = afterLength + length;
      if (start !== undefined) out.push({ start, end: start + length });
    }
  }
  return out;
}

function readSleb(bytes: Uint8Array, start: number): [number, number] {
  let result = 0;
  let shift = 0;
  let pos = start;
  let byte: number;
  do {
    byte = bytes[pos++]!;
    result |= (byte & 0x7f) << shift;
    shift += 7;
  } while (byte & 0x80 && shift < 35);
  if (shift < 32 && byte & 0x40) result |= -1 << shift;
  return [result, pos];
}

function readLeb(bytes: Uint8Array, start: number): [number, number] {
  let result = 0;
  let shift = 0;
  let pos = start;
  for (;;) {
    const byte = bytes[pos++]!;
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (!(byte & 0x80)) return [result, pos];
  }
}

function encodeLeb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value) byte |= 0x80;
    out.push(byte);
  } while (value);
  return out;
}

/** The size of a WebAssembly memory page. */
export const wasmPageBytes = 65536;

/** The largest memory a wasm32 module can have, in 64 KiB pages (4 GiB). */
export const maxWasm32Pages = 65536;

/**
 * The module with its own (defined, not imported) memory turned into a shared memory, so that
 * another thread can read it while the guest runs (pre-copy). Shared memories need a maximum: the
 * module's own, else 4 GiB (V8 reserves address space for it, not memory). Returns the bytes
 * unchanged when the module imports its memory or already shares it.
 */
export function withSharedMemory(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  let copiedUpTo = 0;
  for (const section of sections(bytes)) {
    if (section.id !== 5) continue;
    const [count, limitsStart] = readLeb(bytes, section.bodyStart);
    const flags = bytes[limitsStart]!;
    if (count !== 1 || flags & 0x02 || flags > 1) break;
    const [minimum, afterMinimum] = readLeb(bytes, limitsStart + 1);
    const maximum = flags === 1 ? readLeb(bytes, afterMinimum)[0] : maxWasm32Pages;
    const body = [...encodeLeb(1), 0x03, ...encodeLeb(minimum), ...encodeLeb(maximum)];
    parts.push(bytes.subarray(0, section.start), Uint8Array.from([5, ...encodeLeb(body.length), ...body]));
    copiedUpTo = section.end;
    break;
  }
  if (copiedUpTo === 0) return Uint8Array.from(bytes);
  parts.push(bytes.subarray(copiedUpTo));
  return Uint8Array.from(Buffer.concat(parts));
}

/** True when the file at `path` is a WebAssembly binary (by its magic bytes, whatever its name). */
export function isWasmFile(path: string): boolean {
  try {
    const fd = openSync(path, 'r');
    try {
      const magic = Buffer.alloc(4);
      return readSync(fd, magic, 0, 4, 0) === 4 && magic.equals(wasmMagic);
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

const wasmMagic = Buffer.from([0, 0x61, 0x73, 0x6d]);

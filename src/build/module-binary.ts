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

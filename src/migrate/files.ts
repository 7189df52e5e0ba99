import {
  chmodSync,
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  rmSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { join, normalize, sep } from 'node:path';
import {
  decodeFile,
  encodeFile,
  type FileDelete,
  type FileHeader,
  Frame,
  type FrameWriter,
} from '../protocol/data-channel.js';
import { ProtocolError } from '../protocol/framing.js';

/** Bytes of file content per FILE frame. */
const pieceBytes = 1 << 20;

interface Entry {
  kind: FileHeader['kind'];
  /** Changes whenever the entry is written (nanosecond times and size). */
  version: string;
}

/**
 * The source side of moving a container's preopened directories: sends every entry once, then
 * only what changed since (by size and nanosecond change times) and what was deleted, so the
 * final pass while the guest is stopped is short.
 */
export class DirectorySender {
  private readonly sent: Map<string, Entry>[];

  constructor(private readonly roots: string[]) {
    this.sent = roots.map(() => new Map());
  }

  /** Sends what changed since the last call; returns the number of content bytes sent. */
  send(writer: FrameWriter): number {
    let bytes = 0;
    this.roots.forEach((root, dir) => {
      const now = walk(root);
      const before = this.sent[dir]!;
      for (const [path, entry] of now) {
        if (before.get(path)?.version === entry.version) continue;
        bytes += sendEntry(writer, dir, root, path, entry.kind);
      }
      // Deepest first, so a directory goes after its children.
      for (const path of [...before.keys()].reverse()) if (!now.has(path)) writer.send(Frame.FileDelete, { dir, path });
      this.sent[dir] = now;
    });
    return bytes;
  }
}

function walk(root: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const visit = (relative: string) => {
    for (const name of readdirSync(join(root, relative)).sort()) {
      const path = relative ? `${relative}/${name}` : name;
      const st = lstatSync(join(root, path), { bigint: true });
      const kind = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : undefined;
      if (!kind) continue; // sockets, fifos, devices do not travel
      out.set(path, { kind, version: `${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.mode}` });
      if (kind === 'directory') visit(path);
    }
  };
  visit('');
  return out;
}

function sendEntry(writer: FrameWriter, dir: number, root: string, path: string, kind: FileHeader['kind']): number {
  const full = join(root, path);
  const mode = Number(lstatSync(full).mode & 0o7777);
  if (kind !== 'file') {
    const target = kind === 'symlink' ? readlinkSync(full) : undefined;
    writer.send(Frame.File, encodeFile({ dir, path, kind, mode, size: 0, offset: 0, target }, new Uint8Array(0)));
    return 0;
  }
  const fd = openSync(full, 'r');
  try {
    let offset = 0;
    for (;;) {
      const piece = Buffer.allocUnsafe(pieceBytes);
      const length = readSync(fd, piece, 0, pieceBytes, offset);
      // One frame even for an empty file; the size is what the file had when its last piece was read.
      if (length === 0 && offset > 0) break;
      writer.send(
        Frame.File,
        encodeFile({ dir, path, kind, mode, size: offset + length, offset }, piece.subarray(0, length)),
      );
      offset += length;
      if (length < pieceBytes) break;
    }
    return offset;
  } finally {
    closeSync(fd);
  }
}

/** The destination side: writes received entries under the container's new directories. */
export class DirectoryReceiver {
  constructor(private readonly roots: string[]) {
    for (const root of roots) mkdirSync(root, { recursive: true });
  }

  /** A FILE frame's payload; throws a ProtocolError if it is malformed or points outside the directories. */
  applyFile(payload: Buffer): void {
    const { header, bytes } = decodeFile(payload);
    const full = this.resolve(header.dir, header.path);
    if (header.kind === 'directory') {
      mkdirSync(full, { recursive: true });
      chmodSync(full, header.mode);
    } else if (header.kind === 'symlink') {
      rmSync(full, { force: true, recursive: true });
      symlinkSync(header.target!, full);
    } else {
      // The first piece replaces whatever was there; later pieces extend it.
      const fd = openSync(full, header.offset === 0 ? 'w' : 'r+', header.mode);
      try {
        writeSync(fd, bytes, 0, bytes.length, header.offset);
      } finally {
        closeSync(fd);
      }
      if (header.offset === 0) chmodSync(full, header.mode);
    }
  }

  applyDelete(payload: FileDelete): void {
    rmSync(this.resolve(payload.dir, payload.path), { force: true, recursive: true });
  }

  /** A path inside one of the roots; anything else is a protocol violation. */
  private resolve(dir: number, path: string): string {
    const root = this.roots[dir];
    const clean = normalize(path);
    if (root === undefined || clean.startsWith('..') || clean.startsWith(sep) || clean === '.') {
      throw new ProtocolError(`refusing file ${JSON.stringify(path)} outside the container's directories`);
    }
    return join(root, clean);
  }
}

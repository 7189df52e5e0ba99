import { closeSync, constants, fsyncSync, lstatSync, openSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Errno, Filetype, Preopentype, Size } from '../constants.js';
import { nodeCode, WasiError, WasiSetupError } from '../errors.js';
import { type Preopen, resolvePath } from '../sandbox.js';
import { type Filestat, filestatOf, filetypeOf } from '../stat.js';
import { type CommonState, Descriptor } from './descriptor.js';

export interface DirEntryState {
  name: string;
  ino: string;
  type: number;
}

export interface DirectoryState extends CommonState {
  kind: 'directory';
  /** Guest path of the preopen the directory lives under. */
  preopen: string;
  /** Path relative to that preopen ('' for the preopen itself). */
  path: string;
  /** Whether fd_prestat_* describe this fd. */
  isPreopen: boolean;
  /** The listing an fd_readdir iteration is walking, so cookies stay valid after restore. */
  listing: DirEntryState[] | null;
}

interface DirEntry {
  name: string;
  ino: bigint;
  type: number;
}

/**
 * A directory, held by path (no host fd): path operations resolve relative to it through the
 * sandbox, and capture needs nothing but the path.
 */
export class DirectoryDescriptor extends Descriptor {
  readonly filetype = Filetype.DIRECTORY;
  /** Snapshot taken at cookie 0; later cookies index into it, so one iteration is consistent. */
  private listing: DirEntry[] | undefined;

  constructor(
    readonly preopen: Preopen,
    readonly path: string,
    readonly isPreopen: boolean,
    rightsBase: bigint,
    rightsInheriting: bigint,
    fdflags: number,
  ) {
    super(rightsBase, rightsInheriting, fdflags);
  }

  /** Check the captured directory still exists (following the sandbox) and reopen it. */
  static restore(state: DirectoryState, preopen: Preopen): DirectoryDescriptor {
    const at = resolvePath(preopen.hostPath, '', state.path === '' ? '.' : state.path, true);
    if (!statSync(at.host).isDirectory()) throw new WasiSetupError(`${at.host} is not a directory`);
    const dir = new DirectoryDescriptor(
      preopen,
      at.rel,
      state.isPreopen,
      BigInt(state.rightsBase),
      BigInt(state.rightsInheriting),
      state.fdflags,
    );
    dir.listing = state.listing?.map((e) => ({ name: e.name, ino: BigInt(e.ino), type: e.type }));
    return dir;
  }

  override prestat(): { type: number; name: string } | undefined {
    return this.isPreopen ? { type: Preopentype.DIR, name: this.preopen.guestPath } : undefined;
  }

  get hostPath(): string {
    return join(this.preopen.hostPath, this.path);
  }

  override read(): number {
    throw new WasiError(Errno.ISDIR);
  }
  override write(): number {
    throw new WasiError(Errno.ISDIR);
  }
  override pread(): number {
    throw new WasiError(Errno.ISDIR);
  }
  override pwrite(): number {
    throw new WasiError(Errno.ISDIR);
  }
  override setSize(): void {
    throw new WasiError(Errno.ISDIR);
  }

  override filestat(): Filestat {
    return filestatOf(statSync(this.hostPath, { bigint: true }));
  }

  override setTimes(atime: number, mtime: number): void {
    utimesSync(this.hostPath, atime, mtime);
  }

  override sync(): void {
    const fd = openSync(this.hostPath, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  override datasync(): void {
    this.sync();
  }

  /**
   * Entry i has d_next = i + 1, so a cookie is the index to continue from. Entries are packed
   * until the buffer is full; the last one may be cut short, which tells the guest (per the
   * spec) to retry from its cookie with a larger buffer.
   */
  override readdir(cookie: bigint, bufLen: number): Uint8Array {
    if (cookie === 0n || this.listing === undefined) this.listing = this.list();
    const out = new Uint8Array(bufLen);
    let used = 0;
    for (let i = Number(cookie); i < this.listing.length && used < bufLen; i++) {
      const entry = this.listing[i]!;
      const name = Buffer.from(entry.name);
      const bytes = new Uint8Array(Size.DIRENT + name.length);
      const view = new DataView(bytes.buffer);
      view.setBigUint64(0, BigInt(i + 1), true);
      view.setBigUint64(8, entry.ino, true);
      view.setUint32(16, name.length, true);
      view.setUint8(20, entry.type);
      bytes.set(name, Size.DIRENT);
      const n = Math.min(bytes.length, bufLen - used);
      out.set(bytes.subarray(0, n), used);
      used += n;
    }
    return out.subarray(0, used);
  }

  /** '.', '..', then the entries sorted by name, so the order is the same on every host. */
  private list(): DirEntry[] {
    const host = this.hostPath;
    const self = lstatSync(host, { bigint: true });
    // The preopen root's '..' is outside the sandbox; report the root itself.
    const parent = this.path === '' ? self : lstatSync(dirname(host), { bigint: true });
    const entries: DirEntry[] = [
      { name: '.', ino: self.ino, type: Filetype.DIRECTORY },
      { name: '..', ino: parent.ino, type: Filetype.DIRECTORY },
    ];
    for (const name of readdirSync(host).sort()) {
      try {
        const st = lstatSync(join(host, name), { bigint: true });
        entries.push({ name, ino: st.ino, type: filetypeOf(st) });
      } catch (e) {
        // Removed between readdir and lstat: it is simply not listed.
        if (nodeCode(e) !== 'ENOENT') throw e;
      }
    }
    return entries;
  }

  override capture(): DirectoryState {
    return {
      kind: 'directory',
      ...this.captureCommon(),
      preopen: this.preopen.guestPath,
      path: this.path,
      isPreopen: this.isPreopen,
      listing: this.listing?.map((e) => ({ name: e.name, ino: e.ino.toString(), type: e.type })) ?? null,
    };
  }
}

import {
  closeSync,
  constants,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  futimesSync,
  openSync,
  readSync,
  readvSync,
  unlinkSync,
  writeFileSync,
  writevSync,
} from 'node:fs';
import { join } from 'node:path';
import { Errno, Fdflags, Rights, Whence } from '../constants.js';
import { WasiError, WasiSetupError } from '../errors.js';
import { type Preopen, type Resolved, resolvePath } from '../sandbox.js';
import { type Filestat, filestatOf, filetypeOf } from '../stat.js';
import { type CommonState, Descriptor } from './descriptor.js';

export interface FileState extends CommonState {
  kind: 'file';
  /** Guest path of the preopen the file lives under. */
  preopen: string;
  /** Path relative to that preopen. */
  path: string;
  /** Current offset, decimal. */
  offset: string;
  /**
   * The file's bytes (base64) when it was open but no longer had a name (removed while open, as
   * SQLite does with its temporary files): reopening by path would find nothing, so the bytes
   * travel with the guest, as CRIU's ghost files do.
   */
  ghost?: string;
}

let ghostCount = 0;

/** The largest nameless open file a capture carries (CRIU's ghost limit is 1 MiB by default). */
export const ghostLimit = 64 * 1024 * 1024;

/** The host access mode that serves `rights`: write access only when the guest may write. */
function accessMode(rights: bigint): number {
  const read = (rights & Rights.FD_READ) !== 0n;
  const write = (rights & (Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE)) !== 0n;
  if (read && write) return constants.O_RDWR;
  return write ? constants.O_WRONLY : constants.O_RDONLY;
}

/** `size` as a file size Node takes (a safe integer); EFBIG beyond, as from the kernel. */
function fileSize(size: bigint): bigint {
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new WasiError(Errno.FBIG);
  return size;
}

/**
 * A file (or device) opened under a preopen. The offset is kept here and every transfer is
 * positioned, so the host fd's own position never matters and the offset is plain state.
 */
export class FileDescriptor extends Descriptor {
  readonly filetype: number;

  private constructor(
    private readonly fd: number,
    readonly preopen: Preopen,
    readonly path: string,
    rightsBase: bigint,
    rightsInheriting: bigint,
    fdflags: number,
    private position: bigint,
  ) {
    super(rightsBase, rightsInheriting, fdflags);
    this.filetype = filetypeOf(fstatSync(fd));
  }

  /**
   * Open `at` (already resolved by the sandbox) on the host. `createFlags` are Node's
   * O_CREAT/O_EXCL/O_TRUNC; O_NOFOLLOW always, since the sandbox resolved every symlink.
   */
  static open(
    preopen: Preopen,
    at: Resolved,
    createFlags: number,
    rightsBase: bigint,
    rightsInheriting: bigint,
    fdflags: number,
    position = 0n,
  ): FileDescriptor {
    const fd = openSync(at.host, accessMode(rightsBase) | createFlags | constants.O_NOFOLLOW);
    try {
      return new FileDescriptor(fd, preopen, at.rel, rightsBase, rightsInheriting, fdflags, position);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /**
   * Reopen a captured file by path, never creating or truncating it; a nameless (ghost) file is
   * made again under the preopen's host directory from its bytes, opened and removed, so it has
   * no name again.
   */
  static restore(state: FileState, preopen: Preopen): FileDescriptor {
    const rights = [BigInt(state.rightsBase), BigInt(state.rightsInheriting)] as const;
    if (state.ghost === undefined) {
      const at = resolvePath(preopen.hostPath, '', state.path, true);
      return FileDescriptor.open(preopen, at, 0, ...rights, state.fdflags, BigInt(state.offset));
    }
    const host = join(preopen.hostPath, `.roam-ghost-${process.pid}-${ghostCount++}`);
    writeFileSync(host, Buffer.from(state.ghost, 'base64'), { flag: 'wx', mode: 0o600 });
    try {
      return FileDescriptor.open(preopen, { host, rel: state.path }, 0, ...rights, state.fdflags, BigInt(state.offset));
    } finally {
      unlinkSync(host);
    }
  }

  override read(iovs: Uint8Array[]): number {
    const n = readvSync(this.fd, iovs, Number(this.position));
    this.position += BigInt(n);
    return n;
  }

  override write(iovs: Uint8Array[]): number {
    const at = this.fdflags & Fdflags.APPEND ? fstatSync(this.fd, { bigint: true }).size : this.position;
    const n = writevSync(this.fd, iovs, Number(at));
    this.position = at + BigInt(n);
    this.afterWrite();
    return n;
  }

  override pread(iovs: Uint8Array[], offset: bigint): number {
    return readvSync(this.fd, iovs, Number(offset));
  }

  override pwrite(iovs: Uint8Array[], offset: bigint): number {
    const n = writevSync(this.fd, iovs, Number(offset));
    this.afterWrite();
    return n;
  }

  /** Node cannot set O_SYNC/O_DSYNC on an open fd, so the sync flags are honoured by flushing. */
  private afterWrite(): void {
    if (this.fdflags & Fdflags.SYNC) fsyncSync(this.fd);
    else if (this.fdflags & Fdflags.DSYNC) fdatasyncSync(this.fd);
  }

  override seek(offset: bigint, whence: number): bigint {
    let base: bigint;
    if (whence === Whence.SET) base = 0n;
    else if (whence === Whence.CUR) base = this.position;
    else if (whence === Whence.END) base = fstatSync(this.fd, { bigint: true }).size;
    else throw new WasiError(Errno.INVAL);
    const next = base + offset;
    if (next < 0n) throw new WasiError(Errno.INVAL);
    this.position = next;
    return next;
  }

  override tell(): bigint {
    return this.position;
  }

  override filestat(): Filestat {
    return filestatOf(fstatSync(this.fd, { bigint: true }));
  }

  override setSize(size: bigint): void {
    ftruncateSync(this.fd, Number(fileSize(size)));
  }

  override setTimes(atime: number, mtime: number): void {
    futimesSync(this.fd, atime, mtime);
  }

  /** Advice is only a hint and Node has no posix_fadvise. */
  override advise(): void {}

  /** Node has no fallocate; growing the file gives the same guarantee of size. */
  override allocate(offset: bigint, len: bigint): void {
    const end = fileSize(offset + len);
    if (fstatSync(this.fd, { bigint: true }).size < end) ftruncateSync(this.fd, Number(end));
  }

  override sync(): void {
    fsyncSync(this.fd);
  }

  override datasync(): void {
    fdatasyncSync(this.fd);
  }

  override poll(kind: 'read' | 'write'): bigint {
    if (kind === 'write') return 0n;
    const left = fstatSync(this.fd, { bigint: true }).size - this.position;
    return left > 0n ? left : 0n;
  }

  override close(): void {
    closeSync(this.fd);
  }

  override capture(): FileState {
    const state: FileState = {
      kind: 'file',
      ...this.captureCommon(),
      preopen: this.preopen.guestPath,
      path: this.path,
      offset: this.position.toString(),
    };
    const stat = fstatSync(this.fd);
    if (stat.nlink > 0) return state;
    if (stat.size > ghostLimit) {
      throw new WasiSetupError(
        `WASI host: "${this.path}" is open but removed, and its ${stat.size} bytes exceed the ${ghostLimit} a capture carries`,
      );
    }
    const bytes = Buffer.alloc(stat.size);
    for (let at = 0; at < bytes.length; ) {
      const n = readSync(this.fd, bytes, at, bytes.length - at, at);
      if (n === 0) break;
      at += n;
    }
    return { ...state, ghost: bytes.toString('base64') };
  }
}

/** Drive a WasiHost's imports directly against a WebAssembly.Memory, without a module. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, open, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { promisify } from 'node:util';
import type { Blocker } from '../../src/engine/blocking.js';
import { Errno, Oflags, RIGHTS_ALL, Rights } from '../../src/wasi/constants.js';
import { WasiHost, type WasiOptions } from '../../src/wasi/host.js';
import { AddressFamily } from '../../src/wasi/loopback.js';

/** A temporary directory removed when the test file ends. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'roam-wasi-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A FIFO with both ends open as plain fds (a host's stdin stream may take the read end over
 * and close it at EOF, so nothing else must own it). The read end blocks like a shell pipe's.
 */
export async function fifo(): Promise<{ r: number; w: number }> {
  const path = join(tempDir(), 'fifo');
  execFileSync('mkfifo', [path]);
  const openFd = promisify(open);
  const [r, w] = await Promise.all([openFd(path, 'r'), openFd(path, 'w')]);
  return { r, w };
}

type Fn = (...args: (number | bigint)[]) => number;

export const READ_RIGHTS =
  Rights.FD_READ |
  Rights.FD_SEEK |
  Rights.FD_TELL |
  Rights.FD_FILESTAT_GET |
  Rights.FD_READDIR |
  Rights.POLL_FD_READWRITE;
export const RW_RIGHTS = RIGHTS_ALL;

export interface OpenOptions {
  oflags?: number;
  rights?: bigint;
  inheriting?: bigint;
  fdflags?: number;
  follow?: boolean;
}

/** A guest's view: memory with a bump allocator, and typed wrappers around the imports. */
export class Guest {
  readonly memory = new WebAssembly.Memory({ initial: 2 });
  private next = 1024;
  private readonly fns: Record<string, Fn>;
  private readonly posixFns: Record<string, Fn>;

  constructor(readonly host: WasiHost) {
    host.bindMemory(this.memory);
    const modules = host.imports();
    this.fns = modules.wasi_snapshot_preview1 as Record<string, Fn>;
    this.posixFns = modules.roam_posix as Record<string, Fn>;
  }

  static create(options: WasiOptions = {}): Guest {
    return new Guest(new WasiHost(options));
  }

  call(name: string, ...args: (number | bigint)[]): number {
    const fn = this.fns[name];
    if (fn === undefined) throw new Error(`no import ${name}`);
    return fn(...args);
  }

  /** Call a roam_posix import. */
  posix(name: string, ...args: (number | bigint)[]): number {
    const fn = this.posixFns[name];
    if (fn === undefined) throw new Error(`no roam_posix import ${name}`);
    return fn(...args);
  }

  get view(): DataView {
    return new DataView(this.memory.buffer);
  }

  alloc(size: number): number {
    const ptr = this.next;
    this.next += Math.ceil(Math.max(size, 1) / 8) * 8;
    if (this.next > this.memory.buffer.byteLength) this.memory.grow(1);
    return ptr;
  }

  put(data: Uint8Array | string): [number, number] {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const ptr = this.alloc(bytes.length);
    new Uint8Array(this.memory.buffer).set(bytes, ptr);
    return [ptr, bytes.length];
  }

  bytes(ptr: number, len: number): Buffer {
    return Buffer.from(new Uint8Array(this.memory.buffer, ptr, len));
  }

  u8(ptr: number): number {
    return this.view.getUint8(ptr);
  }
  u16(ptr: number): number {
    return this.view.getUint16(ptr, true);
  }
  u32(ptr: number): number {
    return this.view.getUint32(ptr, true);
  }
  u64(ptr: number): bigint {
    return this.view.getBigUint64(ptr, true);
  }

  /** An iovec array over fresh buffers of the given sizes (or holding the given data). */
  iovecs(parts: (number | string)[]): { ptr: number; bufs: [number, number][] } {
    const bufs = parts.map((p) => (typeof p === 'number' ? ([this.alloc(p), p] as [number, number]) : this.put(p)));
    const ptr = this.alloc(8 * bufs.length);
    bufs.forEach(([b, l], i) => {
      this.view.setUint32(ptr + 8 * i, b, true);
      this.view.setUint32(ptr + 8 * i + 4, l, true);
    });
    return { ptr, bufs };
  }

  open(dirfd: number, path: string, o: OpenOptions = {}): { errno: number; fd: number } {
    const [p, l] = this.put(path);
    const out = this.alloc(4);
    const errno = this.call(
      'path_open',
      dirfd,
      o.follow === false ? 0 : 1,
      p,
      l,
      o.oflags ?? 0,
      o.rights ?? RW_RIGHTS,
      o.inheriting ?? RW_RIGHTS,
      o.fdflags ?? 0,
      out,
    );
    return { errno, fd: this.u32(out) };
  }

  /** Open and insist on success. */
  openOk(dirfd: number, path: string, o: OpenOptions = {}): number {
    const r = this.open(dirfd, path, o);
    if (r.errno !== Errno.SUCCESS) throw new Error(`path_open ${path}: errno ${r.errno}`);
    return r.fd;
  }

  /** Open a directory the way wasi-libc's opendir does: every right but writing. */
  openDir(dirfd: number, path: string): number {
    return this.openOk(dirfd, path, { oflags: Oflags.DIRECTORY, rights: RW_RIGHTS & ~Rights.FD_WRITE });
  }

  create(dirfd: number, path: string, data: string): void {
    const fd = this.openOk(dirfd, path, { oflags: Oflags.CREAT | Oflags.TRUNC });
    this.write(fd, data);
    this.call('fd_close', fd);
  }

  write(fd: number, ...parts: string[]): { errno: number; n: number } {
    const iov = this.iovecs(parts);
    const out = this.alloc(4);
    const errno = this.call('fd_write', fd, iov.ptr, parts.length, out);
    return { errno, n: this.u32(out) };
  }

  pwrite(fd: number, data: string, offset: bigint): { errno: number; n: number } {
    const iov = this.iovecs([data]);
    const out = this.alloc(4);
    const errno = this.call('fd_pwrite', fd, iov.ptr, 1, offset, out);
    return { errno, n: this.u32(out) };
  }

  /** Read up to `sizes` bytes (one iovec per size); data is the concatenation of what arrived. */
  read(fd: number, ...sizes: number[]): { errno: number; data: string } {
    const iov = this.iovecs(sizes);
    const out = this.alloc(4);
    const errno = this.call('fd_read', fd, iov.ptr, sizes.length, out);
    return { errno, data: this.gather(iov.bufs, errno === 0 ? this.u32(out) : 0) };
  }

  pread(fd: number, size: number, offset: bigint): { errno: number; data: string } {
    const iov = this.iovecs([size]);
    const out = this.alloc(4);
    const errno = this.call('fd_pread', fd, iov.ptr, 1, offset, out);
    return { errno, data: this.gather(iov.bufs, errno === 0 ? this.u32(out) : 0) };
  }

  private gather(bufs: [number, number][], n: number): string {
    const chunks: Buffer[] = [];
    for (const [ptr, len] of bufs) {
      const take = Math.min(len, n);
      chunks.push(this.bytes(ptr, take));
      n -= take;
    }
    return Buffer.concat(chunks).toString();
  }

  seek(fd: number, offset: bigint, whence: number): { errno: number; pos: bigint } {
    const out = this.alloc(8);
    const errno = this.call('fd_seek', fd, offset, whence, out);
    return { errno, pos: this.u64(out) };
  }

  tell(fd: number): { errno: number; pos: bigint } {
    const out = this.alloc(8);
    const errno = this.call('fd_tell', fd, out);
    return { errno, pos: this.u64(out) };
  }

  /** Call a `(fd, path_ptr, path_len)` import. */
  pathCall(name: string, fd: number, path: string): number {
    const [p, l] = this.put(path);
    return this.call(name, fd, p, l);
  }

  fdstat(fd: number): { errno: number; filetype: number; flags: number; base: bigint; inheriting: bigint } {
    const out = this.alloc(24);
    const errno = this.call('fd_fdstat_get', fd, out);
    return {
      errno,
      filetype: this.u8(out),
      flags: this.u16(out + 2),
      base: this.u64(out + 8),
      inheriting: this.u64(out + 16),
    };
  }

  filestat(ptr: number): {
    dev: bigint;
    ino: bigint;
    filetype: number;
    nlink: bigint;
    size: bigint;
    atim: bigint;
    mtim: bigint;
    ctim: bigint;
  } {
    return {
      dev: this.u64(ptr),
      ino: this.u64(ptr + 8),
      filetype: this.u8(ptr + 16),
      nlink: this.u64(ptr + 24),
      size: this.u64(ptr + 32),
      atim: this.u64(ptr + 40),
      mtim: this.u64(ptr + 48),
      ctim: this.u64(ptr + 56),
    };
  }

  pathFilestat(fd: number, path: string, follow = true): { errno: number; stat: ReturnType<Guest['filestat']> } {
    const [p, l] = this.put(path);
    const out = this.alloc(64);
    const errno = this.call('path_filestat_get', fd, follow ? 1 : 0, p, l, out);
    return { errno, stat: this.filestat(out) };
  }

  /** fd_readdir into a buffer of `size` bytes from `cookie`, decoded. */
  readdir(
    fd: number,
    size: number,
    cookie = 0n,
  ): {
    errno: number;
    used: number;
    raw: Buffer;
    entries: { next: bigint; ino: bigint; name: string; type: number }[];
  } {
    const buf = this.alloc(size);
    const out = this.alloc(4);
    const errno = this.call('fd_readdir', fd, buf, size, cookie, out);
    const used = this.u32(out);
    const entries = [];
    let at = 0;
    while (at + 24 <= used) {
      const namlen = this.u32(buf + at + 16);
      if (at + 24 + namlen > used) break;
      entries.push({
        next: this.u64(buf + at),
        ino: this.u64(buf + at + 8),
        type: this.u8(buf + at + 20),
        name: this.bytes(buf + at + 24, namlen).toString(),
      });
      at += 24 + namlen;
    }
    return { errno, used, raw: this.bytes(buf, used), entries };
  }

  /** Every entry name, reading with a small buffer and following cookies. */
  listDir(fd: number, size = 64): string[] {
    const names: string[] = [];
    let cookie = 0n;
    for (;;) {
      const r = this.readdir(fd, size, cookie);
      if (r.errno !== 0) throw new Error(`fd_readdir errno ${r.errno}`);
      for (const e of r.entries) {
        names.push(e.name);
        cookie = e.next;
      }
      if (r.used < size) return names;
    }
  }
}

/** A Blocker that records suspensions instead of unwinding; tests play the engine's part. */
export class RecordingBlocker implements Blocker {
  readonly canSuspend = true;
  /** The value suspend() returns, so tests can tell a suspension from an errno. */
  static readonly SUSPENDED = 0xdead;
  last: { ready: Promise<unknown>; memo: unknown } | undefined;
  private memo: unknown;

  takeResumeMemo(): unknown {
    const memo = this.memo;
    this.memo = undefined;
    return memo;
  }

  suspend(ready: Promise<unknown>, memo?: unknown): number {
    this.last = { ready, memo };
    return RecordingBlocker.SUSPENDED;
  }

  /** Wait like the engine would, then arrange for the re-run to see the memo. */
  async resume(): Promise<void> {
    const last = this.last!;
    this.last = undefined;
    await last.ready;
    this.memo = last.memo;
  }
}

/** The roam_posix socket calls on a Guest, with roam_sockaddr addresses written and read as text. */
export class Sockets {
  constructor(readonly g: Guest) {}

  open(family: number = AddressFamily.INET, fdflags = 0): number {
    const out = this.g.alloc(4);
    assert.equal(this.g.posix('sock_open', family, fdflags, out), Errno.SUCCESS);
    return this.g.u32(out);
  }

  /** A roam_sockaddr in guest memory. */
  addr(family: number, text: string, port: number): number {
    const ptr = this.g.alloc(20);
    const view = this.g.view;
    view.setUint16(ptr, family, true);
    view.setUint16(ptr + 2, port, true);
    const bytes =
      family === AddressFamily.INET
        ? text.split('.').map(Number)
        : text.split(':').flatMap((g) => {
            const n = Number.parseInt(g, 16);
            return [n >> 8, n & 0xff];
          });
    new Uint8Array(this.g.memory.buffer, ptr + 4, 16).set(bytes);
    return ptr;
  }

  bind(fd: number, family: number, text: string, port: number): number {
    return this.g.posix('sock_bind', fd, this.addr(family, text, port));
  }

  connect(fd: number, family: number, text: string, port: number): number {
    return this.g.posix('sock_connect', fd, this.addr(family, text, port));
  }

  name(fd: number, peer = 0): { errno: number; family: number; port: number; addr: string } {
    const out = this.g.alloc(20);
    const errno = this.g.posix('sock_addr', fd, peer, out);
    const family = this.g.u16(out);
    const bytes = [...this.g.bytes(out + 4, 16)];
    const addr =
      family === AddressFamily.INET
        ? bytes.slice(0, 4).join('.')
        : Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16)).join(':');
    return { errno, family, port: this.g.u16(out + 2), addr };
  }

  listen(fd: number): number {
    return this.g.posix('sock_listen', fd, 128);
  }

  accept(fd: number, flags = 0): { errno: number; fd: number } {
    const out = this.g.alloc(4);
    const errno = this.g.call('sock_accept', fd, flags, out);
    return { errno, fd: this.g.u32(out) };
  }

  getopt(fd: number, option: number): { errno: number; value: number } {
    const out = this.g.alloc(4);
    const errno = this.g.posix('sock_getopt', fd, option, out);
    return { errno, value: this.g.view.getInt32(out, true) };
  }

  /** A listener on 127.0.0.1:port and a client connected to it, accepted: [listener, client, server]. */
  connected(port: number): [number, number, number] {
    const l = this.open();
    assert.equal(this.bind(l, AddressFamily.INET, '127.0.0.1', port), Errno.SUCCESS);
    assert.equal(this.listen(l), Errno.SUCCESS);
    const c = this.open();
    assert.equal(this.connect(c, AddressFamily.INET, '127.0.0.1', port), Errno.SUCCESS);
    const s = this.accept(l);
    assert.equal(s.errno, Errno.SUCCESS);
    return [l, c, s.fd];
  }
}

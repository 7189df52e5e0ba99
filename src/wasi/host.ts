import { randomFillSync } from 'node:crypto';
import {
  constants,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { posix, resolve as resolveHostPath } from 'node:path';
import { type Blocker, synchronousBlocker } from '../engine/blocking.js';
import type { Resolution } from '../protocol/tunnel.js';
import { type ClockSource, type ClockState, Clocks, systemClock } from './clock.js';
import {
  ADVICE_MAX,
  Clockid,
  Errno,
  FDFLAGS_ALL,
  Fdflags,
  Filetype,
  Lookupflags,
  Oflags,
  POSIX_MODULE,
  RIGHTS_ALL,
  RIGHTS_STDIO,
  Riflags,
  Rights,
  Size,
  WASI_MODULE,
  Whence,
} from './constants.js';
import { type Descriptor, type DescriptorState, Wait } from './descriptors/descriptor.js';
import { DirectoryDescriptor, type DirectoryState } from './descriptors/directory.js';
import { FileDescriptor } from './descriptors/file.js';
import { type Pipe, PipeDescriptor } from './descriptors/pipe.js';
import {
  InetSocketDescriptor,
  ListenerDescriptor,
  type ListenerState,
  RIGHTS_LISTENER,
  RIGHTS_SOCKET,
  SocketBase,
  type SocketContext,
  SocketDescriptor,
  StreamDescriptor,
} from './descriptors/socket.js';
import { StdioDescriptor, type StdioStream } from './descriptors/stdio.js';
import { StreamPipeDescriptor, streamPipeState } from './descriptors/stream-pipe.js';
import { errnoOf, nodeCode, WasiError, WasiExit, WasiSetupError } from './errors.js';
import { FdTable, MAX_FDS } from './fd-table.js';
import {
  type Address,
  ANY4,
  ANY6,
  addrBytes,
  addrText,
  afOf,
  familyOf,
  ipv6Groups,
  LocalLoopback,
  type Loopback,
  type LoopbackState,
} from './loopback.js';
import { GuestMemory } from './memory.js';
import { Network, type NetworkOptions, type NetworkState } from './network.js';
import { pollOneoff } from './poll.js';
import { type Preopen, type Resolved, resolveEntry, resolvePath } from './sandbox.js';
import { type Filestat, filestatOf, timesToSet } from './stat.js';

export { WasiExit };

export interface WasiOptions {
  /** argv, including argv[0]. */
  args?: string[];
  /** Environment, as a record or as 'KEY=value' strings. */
  env?: Record<string, string> | string[];
  /** Directories the guest may use; they become fds 3, 4, ... in this order. */
  preopens?: Preopen[];
  /** Host fds behind the guest's stdio (default 0, 1, 2). */
  stdin?: number;
  stdout?: number;
  stderr?: number;
  /** How calls that must wait do so (default: synchronously). */
  blocker?: Blocker;
  /** Time source (default: the system clocks). */
  clock?: ClockSource;
  /** Client connections through a gateway: listening sockets at fds 3.. (before preopens), LISTEN_FDS=N. */
  network?: NetworkOptions;
  /** The network this guest shares with the other processes of its container (default: its own). */
  loopback?: Loopback;
  /**
   * Pipes from or to another process of the container (or its owner): the id of the `loopback`
   * stream pair that fd 0 reads (stdin) or fd 1 or 2 writes (stdout, stderr) instead of the host fd.
   */
  stdioPairs?: Partial<Record<StdioStream, number>>;
}

/** Options for restoring: args and env come from the captured state. */
export type WasiRestoreOptions = Omit<WasiOptions, 'args' | 'env'>;

/** An fd that shares the open description of the lower fd `of` (fd_dup), captured there. */
export interface DupState {
  kind: 'dup';
  of: number;
}

export type FdState = (DescriptorState | DupState) & { fd: number };

/** Everything the host knows about the guest, as plain JSON-able data. */
export interface WasiHostState {
  version: typeof STATE_VERSION;
  args: string[];
  env: string[];
  fds: FdState[];
  /** Absent until a host has run (the initial state of a fresh host). */
  clocks?: ClockState;
  /** Client connections and the bytes in flight on them. */
  network?: NetworkState;
  /** When the guest's real-time timer expires, in ns of its monotonic clock (timer_deadline). */
  timerDeadline?: string;
  /** In-container connections (stream pairs) and their bytes in flight; absent when there are none. */
  loopback?: LoopbackState;
}

/** 2: fds sharing a description (dup) and pipes. 3: the guest's own sockets (socket, loopback pairs). */
const STATE_VERSION = 3;

const encoder = new TextEncoder();
/** Bytes of a roam_sockaddr (runtime/posix/sockets.c). */
const SOCKADDR_SIZE = 20;
/** Bytes of one sock_resolve answer: [u8 family 4 or 6][3 unused][16 address bytes] (runtime/posix/sockets.c). */
const resolvedAddressSize = 20;
const u64 = (value: bigint) => BigInt.asUintN(64, value);
const cstrings = (list: string[]) => list.map((s) => encoder.encode(`${s}\0`));

/**
 * The wasi_snapshot_preview1 host, with Roam's roam_posix module beside it (what POSIX needs and
 * WASI lacks: dup, pipe, sockets of its own). Imports decode guest memory and dispatch to descriptors;
 * every failure inside a call becomes an errno (proc_exit's WasiExit excepted): nothing thrown
 * by node:fs or a bad guest pointer reaches the engine. Only known failures map to their errno
 * (errors.ts); anything else is a host bug, reported on stderr once per function, and EIO.
 *
 * Usage: new WasiHost(options) or WasiHost.restore(state, options); instantiate with
 * host.imports() (both modules); bindMemory() with the instance's memory before
 * running; capture() whenever the guest is stopped; close() once it will not run again.
 */
export class WasiHost {
  private readonly memory = new GuestMemory();
  private readonly fds = new FdTable();
  /** The id the next fd_pipe gets: unique among the pipes of this host (and of its captures). */
  private nextPipeId = 0;
  private readonly blocker: Blocker;
  private readonly clocks: Clocks;
  private readonly args: string[];
  private readonly env: string[];
  private readonly argsEncoded: Uint8Array[];
  private readonly envEncoded: Uint8Array[];
  private importObject: Record<string, WebAssembly.ModuleImports> | undefined;
  private readonly network: Network | undefined;
  /** The container's own ports, listeners and in-container connections. */
  private readonly loopback: Loopback;
  private readonly sockets: SocketContext;
  /** See timer_deadline; 0n when no timer is armed. */
  private timerDeadline: bigint;
  /** What suspended calls wait on, one per waiting green thread; each leaves when it settles. */
  private readonly waits = new Set<Wait>();

  /** A fresh host; `state` is for restore(), which should be used instead of passing it here. */
  constructor(options: WasiOptions = {}, state: WasiHostState = initialState(options)) {
    if (state.version !== STATE_VERSION) {
      throw new WasiSetupError(
        `WASI host: unsupported state version ${String(state.version)} (expected ${STATE_VERSION})`,
      );
    }
    this.blocker = options.blocker ?? synchronousBlocker;
    this.clocks = new Clocks(options.clock ?? systemClock, state.clocks);
    this.timerDeadline = BigInt(state.timerDeadline ?? 0);
    this.args = [...state.args];
    this.env = [...state.env];
    this.argsEncoded = cstrings(this.args);
    this.envEncoded = cstrings(this.env);
    // A restored network keeps its connections; the gateway to attach to may be this node's own.
    const network = state.network ?? (options.network && { ...options.network, conns: [] });
    this.network =
      network && new Network(options.network ? { ...network, gateway: options.network.gateway } : network, network);
    this.loopback = options.loopback ?? new LocalLoopback(state.loopback);
    this.sockets = { loopback: this.loopback, network: this.network, canSuspend: this.blocker.canSuspend };
    this.openAll(state.fds, options);
  }

  /**
   * Rebuild a captured host. Preopens are matched by guest path and may point at other host
   * paths; fd numbers, offsets, stdin's buffered input and the clocks carry over.
   */
  static restore(state: WasiHostState, options: WasiRestoreOptions = {}): WasiHost {
    return new WasiHost(options, state);
  }

  bindMemory(memory: WebAssembly.Memory): void {
    this.memory.bind(memory);
  }

  /**
   * The state of the stopped guest. The waits its threads were suspended on are cancelled (the
   * engine re-runs the calls on resume), so no timer or stdin read outlives the guest on this host. An open
   * description is captured once, at its lowest fd; its other fds are aliases of that one.
   */
  capture(): WasiHostState {
    this.dropWaits();
    const first = new Map<Descriptor, number>();
    const fds = this.fds.entries().map(([fd, d]): FdState => {
      const of = first.get(d);
      if (of !== undefined) return { fd, kind: 'dup', of };
      first.set(d, fd);
      return { fd, ...d.capture() };
    });
    const loopback = this.loopback.capture();
    return {
      version: STATE_VERSION,
      args: [...this.args],
      env: [...this.env],
      fds,
      clocks: this.clocks.capture(),
      ...(loopback.pairs.length ? { loopback } : {}),
      ...(this.network ? { network: this.network.capture() } : {}),
      ...(this.timerDeadline ? { timerDeadline: this.timerDeadline.toString() } : {}),
    };
  }

  /** Client connections come through the gateway's tunnel, a socket of Node's event loop. */
  usesEventLoop(): boolean {
    return this.network !== undefined;
  }

  /** True when the guest's real-time timer has expired (see timer_deadline). */
  timerDue(): boolean {
    return this.timerDeadline !== 0n && this.clocks.now(Clockid.MONOTONIC) >= this.timerDeadline;
  }

  /**
   * The guest runs again after a capture (or for the first time after a restore): take up client
   * connections now rather than at its next socket call.
   */
  resumeNetwork(): void {
    this.network?.touch();
  }

  /**
   * Close every descriptor (host files, stdin reading); for a host that will not run again,
   * e.g. on the source node once a migration has committed.
   */
  close(): void {
    this.dropWaits();
    for (const d of this.fds.clear()) d.close();
    this.network?.shutdown();
  }

  private openAll(fds: FdState[], options: WasiOptions): void {
    const preopens = new Map<string, Preopen>();
    for (const p of options.preopens ?? []) {
      if (preopens.has(p.guestPath)) throw new WasiSetupError(`WASI host: preopen "${p.guestPath}" given twice`);
      preopens.set(p.guestPath, { guestPath: p.guestPath, hostPath: resolveHostPath(p.hostPath) });
    }
    const stdio: Record<StdioStream, number> = {
      stdin: options.stdin ?? 0,
      stdout: options.stdout ?? 1,
      stderr: options.stderr ?? 2,
    };
    const pipes = new Map<number, Pipe>();
    try {
      const seen = new Set<number>();
      const dups: (FdState & DupState)[] = [];
      for (const state of fds) {
        if (seen.has(state.fd)) throw new WasiSetupError(`WASI host: fd ${state.fd} appears twice in the state`);
        if (!(Number.isInteger(state.fd) && state.fd >= 0 && state.fd < MAX_FDS))
          throw new WasiSetupError(`WASI host: fd ${state.fd} in the state is not a valid fd number`);
        seen.add(state.fd);
        if (state.kind === 'dup') dups.push(state);
        else this.fds.set(state.fd, this.openOne(state, preopens, stdio, pipes));
      }
      // Aliases last, so that they may name any fd; they share its descriptor, as before capture.
      const aliases = new Set(dups.map((dup) => dup.fd));
      for (const dup of dups) {
        const d = aliases.has(dup.of) ? undefined : this.fds.get(dup.of);
        if (d === undefined)
          throw new WasiSetupError(`WASI host: fd ${dup.fd} shares fd ${dup.of}, which the state does not describe`);
        this.fds.set(dup.fd, d);
      }
      this.nextPipeId = Math.max(0, ...[...pipes.keys()].map((id) => id + 1));
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private openOne(
    state: DescriptorState & { fd: number },
    preopens: Map<string, Preopen>,
    stdio: Record<StdioStream, number>,
    pipes: Map<number, Pipe>,
  ): Descriptor {
    if (state.kind === 'stdio') return StdioDescriptor.restore(state, stdio[state.stream], this.blocker);
    if (state.kind === 'pipe') return PipeDescriptor.restore(state, pipes, this.blocker.canSuspend);
    if (state.kind === 'inet') return new InetSocketDescriptor(this.sockets, state);
    if (state.kind === 'stream') return StreamDescriptor.restore(this.sockets, state);
    if (state.kind === 'streamPipe') return StreamPipeDescriptor.restore(state, this.loopback, this.blocker.canSuspend);
    if (state.kind === 'listener' || state.kind === 'socket') {
      // A listener the guest made itself needs no gateway; those handed in and their clients do.
      if (!this.network && !(state.kind === 'listener' && state.bound))
        throw new WasiSetupError(`WASI host: fd ${state.fd} is a socket but the host has no network`);
      return state.kind === 'listener'
        ? new ListenerDescriptor(this.sockets, state)
        : SocketDescriptor.restore(this.sockets, state);
    }
    const guest = posix.join(state.preopen, state.path);
    const preopen = preopens.get(state.preopen);
    if (preopen === undefined) {
      throw new WasiSetupError(
        `WASI host: fd ${state.fd} (${state.kind} "${guest}") needs preopen "${state.preopen}", which was not given`,
      );
    }
    try {
      return state.kind === 'file'
        ? FileDescriptor.restore(state, preopen)
        : DirectoryDescriptor.restore(state, preopen);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new WasiSetupError(
        `WASI host: cannot open fd ${state.fd}, ${state.kind} "${guest}" (host ${preopen.hostPath}): ${why}`,
        { cause: e },
      );
    }
  }

  /**
   * The import modules, by name: `wasi_snapshot_preview1` and `roam_posix` (the same objects each
   * time). A module that imports neither of them simply ignores it.
   */
  imports(): Record<string, WebAssembly.ModuleImports> {
    this.importObject ??= { [WASI_MODULE]: this.makeImports(), [POSIX_MODULE]: this.makePosixImports() };
    return this.importObject;
  }

  /** Cancels every pending wait: their calls are re-made when the guest runs again. */
  private dropWaits(): void {
    for (const wait of this.waits) wait.cancel();
    this.waits.clear();
  }

  /**
   * Run the WASI function `name`: undefined means success, a number is an errno, a Wait suspends
   * the guest. A failure the host does not know (a host bug) is reported once and becomes EIO.
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: a call that succeeds with nothing to say returns nothing (errno 0)
  private call(name: string, body: () => number | void | Wait): number {
    // biome-ignore lint/suspicious/noConfusingVoidType: as body's
    let result: number | void | Wait;
    try {
      result = body();
    } catch (e) {
      if (e instanceof WasiExit) throw e;
      return errnoOf(e, name);
    }
    if (!(result instanceof Wait)) return result ?? Errno.SUCCESS;
    const wait = result;
    this.waits.add(wait);
    const settled = () => this.waits.delete(wait);
    wait.ready.then(settled, settled);
    // Outside the try: if the engine's suspend() fails, that is the engine's error, not the guest's.
    return this.blocker.suspend(result.ready, result.options.memo);
  }

  /** The descriptor behind `fd`, which must hold `rights`; `missing` is the errno if it does not. */
  private fd(fd: number, rights: bigint, missing: number = Errno.NOTCAPABLE): Descriptor {
    const d = this.fds.get(fd >>> 0);
    if (d === undefined) throw new WasiError(Errno.BADF);
    if ((d.rightsBase & rights) !== rights) throw new WasiError(missing);
    return d;
  }

  /** The socket behind `fd`: ENOTSOCK for any other kind (pipes too), then the rights check. */
  private socket(fd: number, rights: bigint): Descriptor {
    const d = this.fd(fd, 0n);
    if (d.filetype !== Filetype.SOCKET_STREAM || isPipeEnd(d)) throw new WasiError(Errno.NOTSOCK);
    return this.fd(fd, rights);
  }

  /** A socket of any kind (ENOTSOCK otherwise): for the roam_posix socket calls. */
  private guestSocket(fd: number): SocketBase {
    const d = this.fd(fd, 0n);
    if (!(d instanceof SocketBase)) throw new WasiError(Errno.NOTSOCK);
    return d;
  }

  /** A roam_sockaddr in guest memory: u16 family (AF_*), u16 port, 16 address bytes. */
  private readAddress(ptr: number): Address {
    const family = familyOf(this.memory.getU16(ptr >>> 0));
    if (family === undefined || family === 'unix') throw new WasiError(Errno.AFNOSUPPORT);
    const port = this.memory.getU16((ptr >>> 0) + 2);
    return { family, addr: addrText(family, this.memory.bytes((ptr >>> 0) + 4, 16)), port };
  }

  private writeAddress(ptr: number, address: Address): void {
    this.memory.bytes(ptr >>> 0, SOCKADDR_SIZE); // EFAULT before anything is written
    this.memory.setU16(ptr >>> 0, afOf(address.family));
    this.memory.setU16((ptr >>> 0) + 2, address.port);
    this.memory.write((ptr >>> 0) + 4, addrBytes(address));
  }

  private dir(fd: number, rights: bigint): DirectoryDescriptor {
    const d = this.fd(fd, 0n);
    if (!(d instanceof DirectoryDescriptor)) throw new WasiError(Errno.NOTDIR);
    return this.fd(fd, rights) as DirectoryDescriptor;
  }

  private prestat(fd: number): { type: number; name: string } {
    const prestat = this.fd(fd, 0n).prestat();
    if (!prestat) throw new WasiError(Errno.BADF);
    return prestat;
  }

  private lookup(dir: DirectoryDescriptor, ptr: number, len: number, lookupflags: number): Resolved {
    const follow = (lookupflags & Lookupflags.SYMLINK_FOLLOW) !== 0;
    return resolvePath(dir.preopen.hostPath, dir.path, this.memory.string(ptr >>> 0, len >>> 0), follow);
  }

  private entry(dir: DirectoryDescriptor, ptr: number, len: number, notNameErrno: number): Resolved {
    return resolveEntry(dir.preopen.hostPath, dir.path, this.memory.string(ptr >>> 0, len >>> 0), notNameErrno);
  }

  private writeFilestat(ptr: number, st: Filestat): void {
    const m = this.memory;
    m.bytes(ptr, Size.FILESTAT).fill(0);
    m.setU64(ptr, st.dev);
    m.setU64(ptr + 8, st.ino);
    m.setU8(ptr + 16, st.filetype);
    m.setU64(ptr + 24, st.nlink);
    m.setU64(ptr + 32, st.size);
    m.setU64(ptr + 40, st.atim);
    m.setU64(ptr + 48, st.mtim);
    m.setU64(ptr + 56, st.ctim);
  }

  private writeStrings(list: Uint8Array[], ptrs: number, buf: number): void {
    let at = buf >>> 0;
    list.forEach((s, i) => {
      this.memory.setU32((ptrs >>> 0) + 4 * i, at);
      this.memory.write(at, s);
      at += s.length;
    });
  }

  private writeSizes(list: Uint8Array[], countPtr: number, sizePtr: number): void {
    this.memory.setU32(countPtr >>> 0, list.length);
    this.memory.setU32(
      sizePtr >>> 0,
      list.reduce((n, s) => n + s.length, 0),
    );
  }

  /** path_open's work once the path is resolved: a directory or a file descriptor. */
  private openAt(
    dir: DirectoryDescriptor,
    at: Resolved,
    oflags: number,
    rightsBase: bigint,
    rightsInheriting: bigint,
    fdflags: number,
  ): Descriptor {
    let isDir = false;
    let exists = true;
    try {
      isDir = lstatSync(at.host).isDirectory();
    } catch (e) {
      if (nodeCode(e) !== 'ENOENT') throw e;
      exists = false;
    }
    if (isDir) {
      if (oflags & Oflags.CREAT && oflags & Oflags.EXCL) throw new WasiError(Errno.EXIST);
      if (oflags & Oflags.TRUNC || rightsBase & Rights.FD_WRITE) throw new WasiError(Errno.ISDIR);
      return new DirectoryDescriptor(dir.preopen, at.rel, false, rightsBase, rightsInheriting, fdflags);
    }
    if (oflags & Oflags.DIRECTORY) {
      throw new WasiError(exists ? Errno.NOTDIR : oflags & Oflags.CREAT ? Errno.INVAL : Errno.NOENT);
    }
    const create =
      (oflags & Oflags.CREAT ? constants.O_CREAT : 0) |
      (oflags & Oflags.EXCL ? constants.O_EXCL : 0) |
      (oflags & Oflags.TRUNC ? constants.O_TRUNC : 0);
    return FileDescriptor.open(dir.preopen, at, create, rightsBase, rightsInheriting, fdflags);
  }

  private makeImports(): WebAssembly.ModuleImports {
    const mem = this.memory;
    return {
      args_get: (argv: number, buf: number) =>
        this.call('args_get', () => this.writeStrings(this.argsEncoded, argv, buf)),
      args_sizes_get: (count: number, size: number) =>
        this.call('args_sizes_get', () => this.writeSizes(this.argsEncoded, count, size)),
      environ_get: (environ: number, buf: number) =>
        this.call('environ_get', () => this.writeStrings(this.envEncoded, environ, buf)),
      environ_sizes_get: (count: number, size: number) =>
        this.call('environ_sizes_get', () => this.writeSizes(this.envEncoded, count, size)),

      clock_res_get: (id: number, out: number) =>
        this.call('clock_res_get', () => mem.setU64(out >>> 0, this.clocks.resolution(id))),
      clock_time_get: (id: number, _precision: bigint, out: number) =>
        this.call('clock_time_get', () => mem.setU64(out >>> 0, this.clocks.now(id))),

      fd_advise: (fd: number, _offset: bigint, _len: bigint, advice: number) =>
        this.call('fd_advise', () => {
          const d = this.fd(fd, Rights.FD_ADVISE);
          if (advice >>> 0 > ADVICE_MAX) throw new WasiError(Errno.INVAL);
          d.advise();
        }),
      fd_allocate: (fd: number, offset: bigint, len: bigint) =>
        this.call('fd_allocate', () => this.fd(fd, Rights.FD_ALLOCATE).allocate(u64(offset), u64(len))),
      fd_close: (fd: number) =>
        this.call('fd_close', () => {
          this.fd(fd, 0n);
          this.fds.delete(fd >>> 0)?.close();
        }),
      fd_datasync: (fd: number) => this.call('fd_datasync', () => this.fd(fd, Rights.FD_DATASYNC).datasync()),
      fd_fdstat_get: (fd: number, out: number) =>
        this.call('fd_fdstat_get', () => {
          const d = this.fd(fd, 0n);
          const at = out >>> 0;
          mem.bytes(at, Size.FDSTAT).fill(0);
          mem.setU8(at, d.filetype);
          mem.setU16(at + 2, d.fdflags);
          mem.setU64(at + 8, d.rightsBase);
          mem.setU64(at + 16, d.rightsInheriting);
        }),
      fd_fdstat_set_flags: (fd: number, flags: number) =>
        this.call('fd_fdstat_set_flags', () => {
          const d = this.fd(fd, Rights.FD_FDSTAT_SET_FLAGS);
          if (flags & ~FDFLAGS_ALL) throw new WasiError(Errno.INVAL);
          d.setFlags(flags);
        }),
      fd_fdstat_set_rights: (fd: number, base: bigint, inheriting: bigint) =>
        this.call('fd_fdstat_set_rights', () => {
          const d = this.fd(fd, 0n);
          const [b, i] = [u64(base), u64(inheriting)];
          // Rights can only be dropped, never gained.
          if (b & ~d.rightsBase || i & ~d.rightsInheriting) throw new WasiError(Errno.NOTCAPABLE);
          d.rightsBase = b;
          d.rightsInheriting = i;
        }),
      fd_filestat_get: (fd: number, out: number) =>
        this.call('fd_filestat_get', () =>
          this.writeFilestat(out >>> 0, this.fd(fd, Rights.FD_FILESTAT_GET).filestat()),
        ),
      fd_filestat_set_size: (fd: number, size: bigint) =>
        this.call('fd_filestat_set_size', () => this.fd(fd, Rights.FD_FILESTAT_SET_SIZE).setSize(u64(size))),
      fd_filestat_set_times: (fd: number, atim: bigint, mtim: bigint, flags: number) =>
        this.call('fd_filestat_set_times', () => {
          const d = this.fd(fd, Rights.FD_FILESTAT_SET_TIMES);
          const now = this.clocks.now(Clockid.REALTIME);
          const [a, m] = timesToSet(flags, u64(atim), u64(mtim), now, () => d.filestat());
          d.setTimes(a, m);
        }),
      fd_pread: (fd: number, iovs: number, count: number, offset: bigint, out: number) =>
        this.call('fd_pread', () => {
          const d = this.fd(fd, Rights.FD_READ, Errno.BADF);
          mem.setU32(out >>> 0, d.pread(mem.iovecs(iovs >>> 0, count >>> 0), u64(offset)));
        }),
      fd_prestat_get: (fd: number, out: number) =>
        this.call('fd_prestat_get', () => {
          const prestat = this.prestat(fd);
          mem.bytes(out >>> 0, Size.PRESTAT).fill(0);
          mem.setU8(out >>> 0, prestat.type);
          mem.setU32((out >>> 0) + 4, encoder.encode(prestat.name).length);
        }),
      fd_prestat_dir_name: (fd: number, path: number, len: number) =>
        this.call('fd_prestat_dir_name', () => {
          const name = encoder.encode(this.prestat(fd).name);
          if (len >>> 0 < name.length) throw new WasiError(Errno.NAMETOOLONG);
          mem.write(path >>> 0, name);
        }),
      fd_pwrite: (fd: number, iovs: number, count: number, offset: bigint, out: number) =>
        this.call('fd_pwrite', () => {
          const d = this.fd(fd, Rights.FD_WRITE, Errno.BADF);
          mem.setU32(out >>> 0, d.pwrite(mem.iovecs(iovs >>> 0, count >>> 0), u64(offset)));
        }),
      fd_read: (fd: number, iovs: number, count: number, out: number) =>
        this.call('fd_read', () => {
          const n = this.fd(fd, Rights.FD_READ, Errno.BADF).read(mem.iovecs(iovs >>> 0, count >>> 0));
          if (n instanceof Wait) return n;
          mem.setU32(out >>> 0, n);
        }),
      fd_readdir: (fd: number, buf: number, len: number, cookie: bigint, out: number) =>
        this.call('fd_readdir', () => {
          const d = this.fd(fd, Rights.FD_READDIR);
          // The guest's buffer first: a bad one is EFAULT before anything is read or allocated.
          const target = mem.bytes(buf >>> 0, len >>> 0);
          const bytes = d.readdir(u64(cookie), len >>> 0);
          target.set(bytes);
          mem.setU32(out >>> 0, bytes.length);
        }),
      fd_renumber: (from: number, to: number) =>
        this.call('fd_renumber', () => {
          const moved = this.fd(from, 0n);
          this.fd(to, 0n);
          if (from >>> 0 === to >>> 0) return;
          // `moved` keeps a reference through `to`, so dropping `from` never closes it.
          const replaced = this.fds.set(to >>> 0, moved);
          this.fds.delete(from >>> 0);
          replaced?.close();
        }),
      fd_seek: (fd: number, offset: bigint, whence: number, out: number) =>
        this.call('fd_seek', () => {
          // A seek that only reads the position needs no more than fd_tell.
          const right = whence === Whence.CUR && offset === 0n ? Rights.FD_TELL : Rights.FD_SEEK;
          mem.setU64(out >>> 0, this.fd(fd, right, Errno.SPIPE).seek(offset, whence));
        }),
      fd_sync: (fd: number) => this.call('fd_sync', () => this.fd(fd, Rights.FD_SYNC).sync()),
      fd_tell: (fd: number, out: number) =>
        this.call('fd_tell', () => mem.setU64(out >>> 0, this.fd(fd, Rights.FD_TELL, Errno.SPIPE).tell())),
      fd_write: (fd: number, iovs: number, count: number, out: number) =>
        this.call('fd_write', () => {
          const n = this.fd(fd, Rights.FD_WRITE, Errno.BADF).write(mem.iovecs(iovs >>> 0, count >>> 0));
          if (n instanceof Wait) return n;
          mem.setU32(out >>> 0, n);
        }),

      path_create_directory: (fd: number, path: number, len: number) =>
        this.call('path_create_directory', () => {
          mkdirSync(this.entry(this.dir(fd, Rights.PATH_CREATE_DIRECTORY), path, len, Errno.EXIST).host);
        }),
      path_filestat_get: (fd: number, flags: number, path: number, len: number, out: number) =>
        this.call('path_filestat_get', () => {
          const at = this.lookup(this.dir(fd, Rights.PATH_FILESTAT_GET), path, len, flags);
          this.writeFilestat(out >>> 0, filestatOf(lstatSync(at.host, { bigint: true })));
        }),
      path_filestat_set_times: (
        fd: number,
        flags: number,
        path: number,
        len: number,
        atim: bigint,
        mtim: bigint,
        fstflags: number,
      ) =>
        this.call('path_filestat_set_times', () => {
          const at = this.lookup(this.dir(fd, Rights.PATH_FILESTAT_SET_TIMES), path, len, flags);
          const now = this.clocks.now(Clockid.REALTIME);
          const current = () => filestatOf(lstatSync(at.host, { bigint: true }));
          const [a, m] = timesToSet(fstflags, u64(atim), u64(mtim), now, current);
          // The sandbox already followed the final symlink if asked to; what is left is not followed.
          lutimesSync(at.host, a, m);
        }),
      path_link: (
        oldFd: number,
        oldFlags: number,
        oldPath: number,
        oldLen: number,
        newFd: number,
        newPath: number,
        newLen: number,
      ) =>
        this.call('path_link', () => {
          const from = this.lookup(this.dir(oldFd, Rights.PATH_LINK_SOURCE), oldPath, oldLen, oldFlags);
          const to = this.entry(this.dir(newFd, Rights.PATH_LINK_TARGET), newPath, newLen, Errno.EXIST);
          linkSync(from.host, to.host);
        }),
      path_open: (
        fd: number,
        dirflags: number,
        path: number,
        len: number,
        oflags: number,
        rightsBase: bigint,
        rightsInheriting: bigint,
        fdflags: number,
        out: number,
      ) =>
        this.call('path_open', () => {
          const dir = this.dir(fd, Rights.PATH_OPEN);
          if (oflags & Oflags.CREAT) this.fd(fd, Rights.PATH_CREATE_FILE);
          if (oflags & Oflags.TRUNC) this.fd(fd, Rights.PATH_FILESTAT_SET_SIZE);
          if (fdflags & ~FDFLAGS_ALL) throw new WasiError(Errno.INVAL);
          // Requested rights beyond what the directory passes on are dropped rather than refused:
          // guests commonly ask for "everything" and expect to get what is allowed.
          const base = u64(rightsBase) & dir.rightsInheriting;
          const inheriting = u64(rightsInheriting) & dir.rightsInheriting;
          const at = this.lookup(dir, path, len, dirflags);
          const newFd = this.fds.lowestFree();
          const opened = this.openAt(dir, at, oflags, base, inheriting, fdflags);
          try {
            mem.setU32(out >>> 0, newFd);
          } catch (e) {
            opened.close();
            throw e;
          }
          this.fds.set(newFd, opened);
        }),
      path_readlink: (fd: number, path: number, len: number, buf: number, bufLen: number, out: number) =>
        this.call('path_readlink', () => {
          const at = this.lookup(this.dir(fd, Rights.PATH_READLINK), path, len, 0);
          const target = readlinkSync(at.host, { encoding: 'buffer' });
          // Like readlink(2), a short buffer silently truncates.
          const n = Math.min(target.length, bufLen >>> 0);
          mem.write(buf >>> 0, target.subarray(0, n));
          mem.setU32(out >>> 0, n);
        }),
      path_remove_directory: (fd: number, path: number, len: number) =>
        this.call('path_remove_directory', () =>
          rmdirSync(this.entry(this.dir(fd, Rights.PATH_REMOVE_DIRECTORY), path, len, Errno.INVAL).host),
        ),
      path_rename: (fd: number, oldPath: number, oldLen: number, newFd: number, newPath: number, newLen: number) =>
        this.call('path_rename', () => {
          const from = this.entry(this.dir(fd, Rights.PATH_RENAME_SOURCE), oldPath, oldLen, Errno.INVAL);
          const to = this.entry(this.dir(newFd, Rights.PATH_RENAME_TARGET), newPath, newLen, Errno.INVAL);
          renameSync(from.host, to.host);
        }),
      path_symlink: (oldPath: number, oldLen: number, fd: number, newPath: number, newLen: number) =>
        this.call('path_symlink', () => {
          // Any link text may be stored; it is checked when the link is followed.
          const target = mem.string(oldPath >>> 0, oldLen >>> 0);
          if (target.includes('\0')) throw new WasiError(Errno.INVAL);
          symlinkSync(target, this.entry(this.dir(fd, Rights.PATH_SYMLINK), newPath, newLen, Errno.EXIST).host);
        }),
      path_unlink_file: (fd: number, path: number, len: number) =>
        this.call('path_unlink_file', () =>
          unlinkSync(this.entry(this.dir(fd, Rights.PATH_UNLINK_FILE), path, len, Errno.INVAL).host),
        ),

      poll_oneoff: (inPtr: number, outPtr: number, count: number, nevents: number) =>
        this.call('poll_oneoff', () => {
          // An event loop polls once it has answered what the last poll found: the answers go now, in one write.
          this.network?.flush();
          return pollOneoff(
            {
              memory: mem,
              clocks: this.clocks,
              blocker: this.blocker,
              descriptor: (fd) => this.fd(fd, Rights.POLL_FD_READWRITE),
            },
            inPtr >>> 0,
            outPtr >>> 0,
            count >>> 0,
            nevents >>> 0,
          );
        }),
      proc_exit: (code: number) => {
        this.network?.flush(); // the last answers leave before the thread may end
        throw new WasiExit(code >>> 0);
      },
      proc_raise: () => Errno.NOSYS,
      random_get: (buf: number, len: number) =>
        this.call('random_get', () => {
          randomFillSync(mem.bytes(buf >>> 0, len >>> 0));
        }),
      sched_yield: () => Errno.SUCCESS,

      sock_accept: (fd: number, flags: number, out: number) =>
        this.call('sock_accept', () => {
          const listener = this.socket(fd, Rights.SOCK_ACCEPT);
          if (flags & ~Fdflags.NONBLOCK) throw new WasiError(Errno.INVAL);
          const newFd = this.fds.lowestFree();
          mem.bytes(out >>> 0, 4); // EFAULT before a connection is taken
          const accepted = listener.accept(flags);
          if (accepted instanceof Wait) return accepted;
          this.fds.set(newFd, accepted);
          mem.setU32(out >>> 0, newFd);
        }),
      sock_recv: (fd: number, iovs: number, count: number, riFlags: number, outLen: number, outFlags: number) =>
        this.call('sock_recv', () => {
          const [n, roFlags] = this.socket(fd, Rights.FD_READ).recv(
            mem.iovecs(iovs >>> 0, count >>> 0),
            riFlags & Riflags.RECV_PEEK,
          );
          if (n instanceof Wait) return n;
          mem.setU32(outLen >>> 0, n);
          mem.setU16(outFlags >>> 0, roFlags);
        }),
      sock_send: (fd: number, iovs: number, count: number, _siFlags: number, out: number) =>
        this.call('sock_send', () => {
          const n = this.socket(fd, Rights.FD_WRITE).send(mem.iovecs(iovs >>> 0, count >>> 0));
          if (n instanceof Wait) return n;
          mem.setU32(out >>> 0, n);
        }),
      sock_shutdown: (fd: number, how: number) =>
        this.call('sock_shutdown', () => {
          if (how >>> 0 === 0 || how >>> 0 > 3) throw new WasiError(Errno.INVAL);
          this.socket(fd, Rights.SOCK_SHUTDOWN).shutdown(how >>> 0);
        }),
    };
  }

  /**
   * The `roam_posix` module: what a POSIX layer needs and WASI lacks. Each function returns an
   * errno (0 on success) and writes its results through pointers, as WASI functions do. None of
   * them blocks; reads and writes on pipes go through fd_read/fd_write.
   */
  private makePosixImports(): WebAssembly.ModuleImports {
    const mem = this.memory;
    return {
      /** fd_dup(fd, min_fd, *result): a new fd, the lowest free >= min_fd, sharing fd's description. */
      fd_dup: (fd: number, minFd: number, out: number) =>
        this.call('fd_dup', () => {
          const d = this.fd(fd, 0n);
          if (!(minFd >= 0 && minFd < MAX_FDS)) throw new WasiError(Errno.INVAL);
          const newFd = this.fds.lowestFree(minFd);
          mem.setU32(out >>> 0, newFd);
          this.fds.set(newFd, d);
        }),
      /** fd_dup2(fd, to): `to` (closed first if open) shares fd's description; fd == to only checks fd. */
      fd_dup2: (fd: number, to: number) =>
        this.call('fd_dup2', () => {
          const d = this.fd(fd, 0n);
          if (!(to >= 0 && to < MAX_FDS)) throw new WasiError(Errno.BADF);
          const replaced = this.fds.set(to, d);
          try {
            replaced?.close();
          } catch {
            // As dup2(2): a failure closing what `to` referred to is not reported.
          }
        }),
      /**
       * fd_is_pipe(fd): 0 when fd is an end of a pipe, NOTSUP when it is something else. WASI has
       * no FIFO filetype (pipes report SOCKET_STREAM): fstat asks this to report S_IFIFO.
       */
      fd_is_pipe: (fd: number) =>
        this.call('fd_is_pipe', () => (isPipeEnd(this.fd(fd, 0n)) ? Errno.SUCCESS : Errno.NOTSUP)),
      /** fd_pipe(*fds): [read_fd, write_fd], the two lowest free fds, ends of a new pipe. */
      /**
       * timer_deadline(ns): the guest's real-time timer (setitimer, alarm) expires at `ns` of its
       * monotonic clock (0: none). At the first migration point past it, the engine calls the
       * guest's `roam_timer_expired` export, which raises SIGALRM.
       */
      timer_deadline: (deadline: bigint) =>
        this.call('timer_deadline', () => {
          this.timerDeadline = BigInt.asUintN(64, deadline);
        }),
      fd_pipe: (out: number) =>
        this.call('fd_pipe', () => {
          const readFd = this.fds.lowestFree();
          const writeFd = this.fds.lowestFree(readFd + 1);
          mem.bytes(out >>> 0, 8); // EFAULT before anything exists
          const [r, w] = PipeDescriptor.create(this.nextPipeId++, this.blocker.canSuspend);
          mem.setU32(out >>> 0, readFd);
          mem.setU32((out >>> 0) + 4, writeFd);
          this.fds.set(readFd, r);
          this.fds.set(writeFd, w);
        }),

      // Sockets (runtime/posix/sockets.c). Addresses are roam_sockaddr structures (readAddress);
      // none of these calls waits: accept, recv and send go through the suspending WASI calls,
      // and an in-container connect completes at once.

      /** sock_open(af, fdflags, *fd): a new stream socket of family af (AF_INET, AF_INET6), unbound. */
      sock_open: (af: number, fdflags: number, out: number) =>
        this.call('sock_open', () => {
          const family = familyOf(af);
          if (family === undefined || family === 'unix') throw new WasiError(Errno.AFNOSUPPORT);
          if (fdflags & ~Fdflags.NONBLOCK) throw new WasiError(Errno.INVAL);
          const fd = this.fds.lowestFree();
          mem.bytes(out >>> 0, 4); // EFAULT before anything exists
          mem.setU32(out >>> 0, fd);
          this.fds.set(fd, InetSocketDescriptor.create(this.sockets, family, fdflags));
        }),
      /** sock_pair(*fds): two connected AF_UNIX stream sockets (socketpair), the two lowest free fds. */
      sock_pair: (out: number) =>
        this.call('sock_pair', () => {
          const first = this.fds.lowestFree();
          const second = this.fds.lowestFree(first + 1);
          mem.bytes(out >>> 0, 8);
          const [a, b] = StreamDescriptor.socketpair(this.sockets, 'unix');
          mem.setU32(out >>> 0, first);
          mem.setU32((out >>> 0) + 4, second);
          this.fds.set(first, a);
          this.fds.set(second, b);
        }),
      /** sock_bind(fd, *addr). */
      sock_bind: (fd: number, addr: number) =>
        this.call('sock_bind', () => this.guestSocket(fd).bind(this.readAddress(addr))),
      /** sock_listen(fd, backlog): every fd of the socket now refers to a listener. */
      sock_listen: (fd: number, backlog: number) =>
        this.call('sock_listen', () => {
          const socket = this.guestSocket(fd);
          this.fds.replace(socket, socket.listen(backlog | 0));
        }),
      /** sock_connect(fd, *addr): to a listener of this container, or ECONNREFUSED / ENETUNREACH. */
      sock_connect: (fd: number, addr: number) =>
        this.call('sock_connect', () => {
          const socket = this.guestSocket(fd);
          const connected = socket.connect(this.readAddress(addr));
          this.fds.replace(socket, connected);
          if (connected.inProgress) throw new WasiError(Errno.INPROGRESS);
        }),
      /** sock_addr(fd, which, *addr): the local (0) or peer (1) address. */
      sock_addr: (fd: number, which: number, out: number) =>
        this.call('sock_addr', () => {
          const socket = this.guestSocket(fd);
          const any = {
            family: socket.family,
            addr: socket.family === 'inet6' ? ANY6 : socket.family === 'inet' ? ANY4 : '',
            port: 0,
          };
          this.writeAddress(out, which ? socket.peerAddress() : (socket.localAddress() ?? any));
        }),
      /** sock_getopt(fd, option, *value): an option of SockOpt (descriptors/socket.ts), as an i32. */
      sock_getopt: (fd: number, option: number, out: number) =>
        this.call('sock_getopt', () => {
          const value = this.guestSocket(fd).getOption(option >>> 0);
          mem.setU32(out >>> 0, value >>> 0);
        }),
      /** sock_setopt(fd, option, value). */
      sock_setopt: (fd: number, option: number, value: number) =>
        this.call('sock_setopt', () => this.guestSocket(fd).setOption(option >>> 0, value | 0)),
      /**
       * sock_resolve(*name, len, *out, max, *count): a host name's addresses as the gateway's node
       * resolves it, `resolvedAddressSize` bytes each; ENOENT for an unknown name, EAGAIN for a
       * name server that did not answer, ENETUNREACH without a network.
       */
      sock_resolve: (name: number, len: number, out: number, max: number, countOut: number) =>
        this.call('sock_resolve', () => {
          const network = this.network;
          if (!network) throw new WasiError(Errno.NETUNREACH);
          const memo = this.blocker.takeResumeMemo() as { resolution?: Resolution } | undefined;
          const resolution = memo?.resolution;
          if (resolution === undefined) {
            if (!this.blocker.canSuspend) throw new WasiError(Errno.NOTSUP);
            const asking: { resolution?: Resolution } = {};
            const answered = network.resolve(this.memory.string(name >>> 0, len >>> 0)).then((r) => {
              if (r) asking.resolution = r;
            });
            return new Wait(answered, { memo: asking });
          }
          if (resolution.error) throw new WasiError(resolution.error === 'EAI_AGAIN' ? Errno.AGAIN : Errno.NOENT);
          const addresses = (resolution.addresses ?? []).slice(0, max >>> 0);
          addresses.forEach(({ family, addr }, i) => {
            const at = (out >>> 0) + i * resolvedAddressSize;
            this.memory.setU8(at, family);
            const address: Address =
              family === 4 ? { family: 'inet', addr, port: 0 } : { family: 'inet6', addr: ipv6Groups(addr), port: 0 };
            this.memory.write(at + 4, addrBytes(address));
          });
          this.memory.setU32(countOut >>> 0, addresses.length);
        }),
    };
  }
}

/** The state a fresh host starts from: stdio at 0-2, then the preopens. */
function initialState(options: WasiOptions): WasiHostState {
  const env = Array.isArray(options.env)
    ? [...options.env]
    : Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const common = (base: bigint, inheriting: bigint) => ({
    rightsBase: base.toString(),
    rightsInheriting: inheriting.toString(),
    fdflags: 0,
  });
  const pairs = options.stdioPairs ?? {};
  const stdio = (['stdin', 'stdout', 'stderr'] as const).map((stream, fd): FdState => {
    const pair = pairs[stream];
    if (pair !== undefined) return { fd, ...streamPipeState(stream === 'stdin' ? 'read' : 'write', pair) };
    return { fd, kind: 'stdio', stream, ...common(RIGHTS_STDIO, 0n), buffered: '', eof: false };
  });
  const listeners = (options.network?.ports ?? []).map((port, i): FdState & ListenerState => ({
    fd: 3 + i,
    kind: 'listener',
    port,
    ...common(RIGHTS_LISTENER, RIGHTS_SOCKET),
  }));
  if (listeners.length > 0) env.push(`LISTEN_FDS=${listeners.length}`);
  const dirs = (options.preopens ?? []).map((p, i): FdState & DirectoryState => ({
    fd: 3 + listeners.length + i,
    kind: 'directory',
    preopen: p.guestPath,
    path: '',
    isPreopen: true,
    listing: null,
    ...common(RIGHTS_ALL, RIGHTS_ALL),
  }));
  return { version: STATE_VERSION, args: options.args ?? [], env, fds: [...stdio, ...listeners, ...dirs] };
}

/** A pipe's end, inside the guest or between processes: fd_is_pipe says so, sock_* calls refuse it. */
function isPipeEnd(d: Descriptor): boolean {
  return d instanceof PipeDescriptor || d instanceof StreamPipeDescriptor;
}

import { Errno } from './constants.js';
import type { Descriptor } from './descriptors/descriptor.js';
import { WasiError } from './errors.js';

/** fd numbers run from 0 to MAX_FDS - 1 (a guest's RLIMIT_NOFILE): EMFILE when all are taken. */
export const MAX_FDS = 65536;

/**
 * The guest's fd numbers. A Descriptor is an open file description: several fds may refer to the
 * same one (fd_dup), sharing its offset, flags and rights, and it is closed when its last fd goes.
 * Methods that drop a reference return the descriptor when that was its last fd, for the caller to
 * close (inside a host call, so that a failure becomes the guest's errno).
 */
export class FdTable {
  private readonly fds = new Map<number, Descriptor>();
  private readonly refs = new Map<Descriptor, number>();

  get(fd: number): Descriptor | undefined {
    return this.fds.get(fd);
  }

  has(fd: number): boolean {
    return this.fds.has(fd);
  }

  /** Every fd with its descriptor, by ascending number. */
  entries(): [number, Descriptor][] {
    return [...this.fds].sort(([a], [b]) => a - b);
  }

  /** The lowest free number >= `min`; EMFILE when none is left below MAX_FDS. */
  lowestFree(min = 0): number {
    for (let fd = min; fd < MAX_FDS; fd++) if (!this.fds.has(fd)) return fd;
    throw new WasiError(Errno.MFILE);
  }

  /** `fd` refers to `d` from now on; returns what it referred to if that lost its last fd. */
  set(fd: number, d: Descriptor): Descriptor | undefined {
    const old = this.fds.get(fd);
    if (old === d) return undefined;
    this.fds.set(fd, d);
    this.refs.set(d, (this.refs.get(d) ?? 0) + 1);
    return old && this.unref(old);
  }

  /** Every fd that refers to `from` refers to `to` instead (a socket that became a listener or a connection). */
  replace(from: Descriptor, to: Descriptor): void {
    const refs = this.refs.get(from);
    if (refs === undefined || from === to) return;
    for (const [fd, d] of this.fds) if (d === from) this.fds.set(fd, to);
    this.refs.delete(from);
    this.refs.set(to, refs);
  }

  /** `fd` is closed; returns its descriptor if that was its last fd. */
  delete(fd: number): Descriptor | undefined {
    const d = this.fds.get(fd);
    if (d === undefined) return undefined;
    this.fds.delete(fd);
    return this.unref(d);
  }

  /** Empties the table; returns every descriptor once. */
  clear(): Descriptor[] {
    const all = [...this.refs.keys()];
    this.fds.clear();
    this.refs.clear();
    return all;
  }

  private unref(d: Descriptor): Descriptor | undefined {
    const left = (this.refs.get(d) ?? 1) - 1;
    if (left > 0) {
      this.refs.set(d, left);
      return undefined;
    }
    this.refs.delete(d);
    return d;
  }
}

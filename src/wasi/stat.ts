import type { BigIntStats, Stats } from 'node:fs';
import { Errno, Filetype, Fstflags } from './constants.js';
import { WasiError } from './errors.js';

export interface Filestat {
  dev: bigint;
  ino: bigint;
  filetype: number;
  nlink: bigint;
  size: bigint;
  atim: bigint;
  mtim: bigint;
  ctim: bigint;
}

/** WASI has no FIFO type; pipes report UNKNOWN. */
export function filetypeOf(st: Stats | BigIntStats): number {
  if (st.isFile()) return Filetype.REGULAR_FILE;
  if (st.isDirectory()) return Filetype.DIRECTORY;
  if (st.isSymbolicLink()) return Filetype.SYMBOLIC_LINK;
  if (st.isCharacterDevice()) return Filetype.CHARACTER_DEVICE;
  if (st.isBlockDevice()) return Filetype.BLOCK_DEVICE;
  if (st.isSocket()) return Filetype.SOCKET_STREAM;
  return Filetype.UNKNOWN;
}

export function filestatOf(st: BigIntStats): Filestat {
  return {
    dev: st.dev,
    ino: st.ino,
    filetype: filetypeOf(st),
    nlink: st.nlink,
    size: st.size,
    atim: st.atimeNs,
    mtim: st.mtimeNs,
    ctim: st.ctimeNs,
  };
}

/**
 * The (atime, mtime) pair, in seconds as Node's utimes wants, for a *_set_times call. A time
 * the flags leave alone keeps its current value, which is only fetched when needed.
 */
export function timesToSet(
  flags: number,
  atim: bigint,
  mtim: bigint,
  now: bigint,
  current: () => Filestat,
): [number, number] {
  if ((flags & Fstflags.ATIM && flags & Fstflags.ATIM_NOW) || (flags & Fstflags.MTIM && flags & Fstflags.MTIM_NOW)) {
    throw new WasiError(Errno.INVAL);
  }
  const setsA = (flags & (Fstflags.ATIM | Fstflags.ATIM_NOW)) !== 0;
  const setsM = (flags & (Fstflags.MTIM | Fstflags.MTIM_NOW)) !== 0;
  const old = setsA && setsM ? undefined : current();
  const a = flags & Fstflags.ATIM_NOW ? now : flags & Fstflags.ATIM ? atim : old!.atim;
  const m = flags & Fstflags.MTIM_NOW ? now : flags & Fstflags.MTIM ? mtim : old!.mtim;
  return [Number(a) / 1e9, Number(m) / 1e9];
}

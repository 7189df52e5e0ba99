import { Errno } from './constants.js';

/** Thrown inside the host to make the current call return `errno` to the guest. */
export class WasiError extends Error {
  constructor(readonly errno: number) {
    super(`WASI errno ${errno}`);
    this.name = 'WasiError';
  }
}

/** Thrown by proc_exit; the engine catches it and ends the instance with `code`. */
export class WasiExit extends Error {
  constructor(readonly code: number) {
    super(`WASI program exited with code ${code}`);
    this.name = 'WasiExit';
  }
}

const NODE_CODES: Record<string, number> = {
  E2BIG: Errno.TOOBIG,
  EACCES: Errno.ACCES,
  EADDRINUSE: Errno.ADDRINUSE,
  EADDRNOTAVAIL: Errno.ADDRNOTAVAIL,
  EAFNOSUPPORT: Errno.AFNOSUPPORT,
  EAGAIN: Errno.AGAIN,
  EWOULDBLOCK: Errno.AGAIN,
  EALREADY: Errno.ALREADY,
  EBADF: Errno.BADF,
  EBUSY: Errno.BUSY,
  ECANCELED: Errno.CANCELED,
  ECONNABORTED: Errno.CONNABORTED,
  ECONNREFUSED: Errno.CONNREFUSED,
  ECONNRESET: Errno.CONNRESET,
  EDEADLK: Errno.DEADLK,
  EDQUOT: Errno.DQUOT,
  EEXIST: Errno.EXIST,
  EFAULT: Errno.FAULT,
  EFBIG: Errno.FBIG,
  EHOSTUNREACH: Errno.HOSTUNREACH,
  EILSEQ: Errno.ILSEQ,
  EINTR: Errno.INTR,
  EINVAL: Errno.INVAL,
  EIO: Errno.IO,
  EISCONN: Errno.ISCONN,
  EISDIR: Errno.ISDIR,
  ELOOP: Errno.LOOP,
  EMFILE: Errno.MFILE,
  EMLINK: Errno.MLINK,
  EMSGSIZE: Errno.MSGSIZE,
  ENAMETOOLONG: Errno.NAMETOOLONG,
  ENETDOWN: Errno.NETDOWN,
  ENETUNREACH: Errno.NETUNREACH,
  ENFILE: Errno.NFILE,
  ENOBUFS: Errno.NOBUFS,
  ENODEV: Errno.NODEV,
  ENOENT: Errno.NOENT,
  ENOEXEC: Errno.NOEXEC,
  ENOMEM: Errno.NOMEM,
  ENOSPC: Errno.NOSPC,
  ENOSYS: Errno.NOSYS,
  ENOTCONN: Errno.NOTCONN,
  ENOTDIR: Errno.NOTDIR,
  ENOTEMPTY: Errno.NOTEMPTY,
  ENOTSOCK: Errno.NOTSOCK,
  ENOTSUP: Errno.NOTSUP,
  EOPNOTSUPP: Errno.NOTSUP,
  ENOTTY: Errno.NOTTY,
  ENXIO: Errno.NXIO,
  EOVERFLOW: Errno.OVERFLOW,
  EPERM: Errno.PERM,
  EPIPE: Errno.PIPE,
  ERANGE: Errno.RANGE,
  EROFS: Errno.ROFS,
  ESPIPE: Errno.SPIPE,
  ESRCH: Errno.SRCH,
  ETIMEDOUT: Errno.TIMEDOUT,
  ETXTBSY: Errno.TXTBSY,
  EXDEV: Errno.XDEV,
};

/** The errno to report for anything thrown inside a call (WasiExit is never passed here). */
export function errnoOf(e: unknown): number {
  if (e instanceof WasiError) return e.errno;
  // Out-of-bounds guest pointers surface as RangeError from typed arrays and DataView.
  if (e instanceof RangeError) return Errno.FAULT;
  const code = nodeCode(e);
  return code !== undefined && code in NODE_CODES ? NODE_CODES[code]! : Errno.IO;
}

/** The `code` of a Node system error ('ENOENT', ...), or undefined for anything else. */
export function nodeCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

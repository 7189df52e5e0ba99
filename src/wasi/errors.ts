import { RoamError } from '../platform/errors.js';
import { Errno } from './constants.js';

/**
 * Thrown inside the host to make the current call return `errno` to the guest. It never leaves
 * the host: the guest sees the errno.
 */
export class WasiError extends RoamError {
  readonly code = 'ROAM_WASI_ERRNO';

  constructor(
    readonly errno: number,
    options?: { cause?: unknown },
  ) {
    super(`WASI errno ${errno}`, options);
  }
}

/**
 * The host cannot be built from the options or the captured state it was given: a preopen
 * missing on restore, a file that cannot be reopened, a state from another version.
 */
export class WasiSetupError extends RoamError {
  readonly code = 'ROAM_WASI_SETUP';
}

/**
 * Thrown by proc_exit; the engine catches it and ends the instance with `code`. Not an error but
 * the guest's exit unwinding through the engine, so not a RoamError: its `code` is the exit status.
 */
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

/**
 * The errno of a failure the host knows: a WasiError (out-of-bounds guest pointers included: the
 * memory accessors throw WasiError(FAULT)), or a Node system error with a code in the table.
 * Undefined for anything else, which is a bug in the host.
 */
export function knownErrno(e: unknown): number | undefined {
  if (e instanceof WasiError) return e.errno;
  if (!(e instanceof Error)) return undefined;
  const code = nodeCode(e);
  return code !== undefined && Object.hasOwn(NODE_CODES, code) ? NODE_CODES[code] : undefined;
}

/** The errno of a Node error code (`ECONNREFUSED`...), for failures reported by name; EIO for an unknown one. */
export function errnoOfCode(code: string): number {
  return Object.hasOwn(NODE_CODES, code) ? NODE_CODES[code]! : Errno.IO;
}

/** WASI functions whose host bug was already reported (once per name and process is enough). */
const reportedBugs = new Set<string>();

/** Where host bugs are reported; process.stderr (the container's log) unless a test replaces it. */
let bugReport: (text: string) => void = (text) => process.stderr.write(text);

/** For tests: send host-bug reports to `sink` and forget which were made; returns the restorer. */
export function redirectHostBugReports(sink: (text: string) => void): () => void {
  const previous = bugReport;
  bugReport = sink;
  reportedBugs.clear();
  return () => {
    bugReport = previous;
    reportedBugs.clear();
  };
}

/**
 * The errno to report for anything thrown inside the WASI function `call` (WasiExit is never
 * passed here). A failure the host does not know is a host bug: reported on stderr with its
 * stack, once per function, and the guest gets EIO.
 */
export function errnoOf(e: unknown, call: string): number {
  const errno = knownErrno(e);
  if (errno !== undefined) return errno;
  if (!reportedBugs.has(call)) {
    reportedBugs.add(call);
    const what = e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e);
    bugReport(`roam: host bug in ${call}: ${what}\n`);
  }
  return Errno.IO;
}

/** The `code` of a Node system error ('ENOENT', ...), or undefined for anything else. */
export function nodeCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

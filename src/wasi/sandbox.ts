import { lstatSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Errno } from './constants.js';
import { nodeCode, WasiError } from './errors.js';

/** A host directory the guest sees at `guestPath`. */
export interface Preopen {
  guestPath: string;
  hostPath: string;
}

/** A guest path resolved inside a preopen. */
export interface Resolved {
  /** Path relative to the preopen root, '/'-separated, no '.', '..' or symlinks ('' is the root). */
  rel: string;
  /** The host path to hand to node:fs. */
  host: string;
}

/** Linux's limit on symlink expansions in one lookup. */
const MAX_SYMLINKS = 40;

/**
 * Resolve `path` for a lookup (open, stat, readlink, ...) from the directory `start` (relative
 * to `root`). Every component is checked with lstat and symlinks are expanded here, never by
 * the OS, so nothing can leave `root`: '..' above it, absolute paths and symlinks with absolute
 * targets give NOTCAPABLE. The final component is followed when `follow` (or when the path ends
 * in '/'); otherwise it may itself be a symlink.
 */
export function resolvePath(root: string, start: string, path: string, follow: boolean): Resolved {
  const walk = walkPath(root, start, path, follow);
  return { rel: walk.parts.join('/'), host: hostPath(root, walk.parts, walk.trailingSlash) };
}

/**
 * Resolve `path` for an operation on the directory entry itself (mkdir, unlink, rmdir, rename,
 * link, symlink): the final component is never followed, and must be a name, not '.' or '..'
 * (`notNameErrno` otherwise). A trailing '/' is passed on, since those calls make the OS check
 * it without following the entry.
 */
export function resolveEntry(root: string, start: string, path: string, notNameErrno: number): Resolved {
  const walk = walkPath(root, start, path, false, true);
  if (!walk.endsWithName) throw new WasiError(notNameErrno);
  return { rel: walk.parts.join('/'), host: hostPath(root, walk.parts, walk.trailingSlash) };
}

function hostPath(root: string, parts: string[], trailingSlash: boolean): string {
  const host = join(root, ...parts);
  return trailingSlash ? `${host}/` : host;
}

interface Walk {
  parts: string[];
  endsWithName: boolean;
  trailingSlash: boolean;
}

function walkPath(root: string, start: string, path: string, follow: boolean, entry = false): Walk {
  if (path.length === 0) throw new WasiError(Errno.NOENT);
  if (path.includes('\0')) throw new WasiError(Errno.INVAL);
  if (path.startsWith('/')) throw new WasiError(Errno.NOTCAPABLE);
  const todo = path.split('/');
  let trailingSlash = false;
  while (todo.length > 1 && todo[todo.length - 1] === '') {
    todo.pop();
    trailingSlash = true;
  }
  // POSIX: a trailing slash makes a lookup follow the final symlink.
  const followFinal = entry ? false : follow || trailingSlash;
  const parts = start === '' ? [] : start.split('/');
  let endsWithName = false;
  let expansions = 0;
  while (todo.length > 0) {
    const name = todo.shift()!;
    if (name === '' || name === '.') {
      endsWithName = false;
      continue;
    }
    if (name === '..') {
      if (parts.length === 0) throw new WasiError(Errno.NOTCAPABLE);
      parts.pop();
      endsWithName = false;
      continue;
    }
    const last = todo.length === 0;
    endsWithName = true;
    if (last && !followFinal) {
      parts.push(name);
      break;
    }
    const host = join(root, ...parts, name);
    let isLink: boolean;
    let isDir: boolean;
    try {
      const st = lstatSync(host);
      isLink = st.isSymbolicLink();
      isDir = st.isDirectory();
    } catch (e) {
      // A missing final component is fine: the caller may be about to create it.
      if (last && nodeCode(e) === 'ENOENT') {
        parts.push(name);
        break;
      }
      throw e;
    }
    if (isLink) {
      if (++expansions > MAX_SYMLINKS) throw new WasiError(Errno.LOOP);
      const target = readlinkSync(host);
      if (target.startsWith('/')) throw new WasiError(Errno.NOTCAPABLE);
      todo.unshift(...target.split('/'));
      continue;
    }
    if (!last && !isDir) throw new WasiError(Errno.NOTDIR);
    parts.push(name);
  }
  return { parts, endsWithName, trailingSlash };
}

import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerError } from './container.js';

/**
 * The stdio of the processes of a container of several: a pipe (a FIFO, opened and unlinked at
 * once: Node has no pipe()) from one process's stdout into another's stdin, or into the owner,
 * which prints each line prefixed with the process's name. A guest writes its stdout with plain
 * blocking writes (its host's stdio descriptor), so any host fd will do.
 */

export interface HostPipe {
  readFd: number;
  writeFd: number;
}

/** A new pipe. The read end is non-blocking, so opening it needs no writer yet. */
export function hostPipe(): HostPipe {
  const dir = mkdtempSync(join(tmpdir(), 'roam-pipe-'));
  const path = join(dir, 'fifo');
  try {
    execFileSync('mkfifo', ['-m', '600', path]);
    const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const writeFd = openSync(path, constants.O_WRONLY);
    return { readFd, writeFd };
  } catch (error) {
    throw new ContainerError(`cannot make a pipe for the container's processes: ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Closes a host fd the owner no longer needs (a process's write end once it ended). */
export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed: nothing to release.
  }
}

/**
 * Copies what arrives on `readFd` to `out`, each line prefixed; resolves once every writer closed
 * the pipe (a last line without a newline gets one).
 */
export function prefixLines(readFd: number, prefix: string, out: NodeJS.WritableStream): Promise<void> {
  const input = new Socket({ fd: readFd, readable: true, writable: false });
  let partial = '';
  input.setEncoding('utf8');
  input.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    if (lines.length) out.write(lines.map((line) => `${prefix}${line}\n`).join(''));
  });
  return new Promise((resolve) => {
    input.on('close', () => {
      if (partial) out.write(`${prefix}${partial}\n`);
      resolve();
    });
    input.on('error', () => input.destroy());
  });
}

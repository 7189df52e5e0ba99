import { mkdirSync } from 'node:fs';
import type { Preopen } from '../wasi/sandbox.js';

/** Where a guest finds its temporary directory. */
export const guestTemporaryDirectory = '/tmp';

/**
 * A container's own temporary directory: unless it was given a directory at /tmp, `hostPath`
 * (created here) is preopened there and TMPDIR points at it (unless set), so mkstemp, tmpfile
 * and the like work. Being a preopened directory, it moves with the container.
 */
export function withTemporaryDirectory(
  preopens: Preopen[],
  env: Record<string, string>,
  hostPath: () => string,
): { preopens: Preopen[]; env: Record<string, string> } {
  if (preopens.some((p) => p.guestPath === guestTemporaryDirectory)) return { preopens, env };
  const path = hostPath();
  mkdirSync(path, { recursive: true });
  return {
    preopens: [...preopens, { guestPath: guestTemporaryDirectory, hostPath: path }],
    env: { TMPDIR: guestTemporaryDirectory, ...env },
  };
}

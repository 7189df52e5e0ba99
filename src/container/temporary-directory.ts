import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import * as v from 'valibot';
import { jsonObject } from '../platform/schema.js';
import type { Preopen } from '../wasi/sandbox.js';

/** Where a guest finds its temporary directory. */
export const guestTemporaryDirectory = '/tmp';

/** How `roam run` names the host directory it makes for a container's /tmp (in the system's temporary directory). */
export const temporaryDirectoryPrefix = 'roam-tmp-';

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

const preopensOfState = jsonObject(
  { preopens: v.array(jsonObject({ guestPath: v.string(), hostPath: v.string() }, 'a preopened directory')) },
  'a container state',
);

/**
 * For `roam restore` of an image that `roam run` checkpointed: the temporary directory `roam run`
 * made for the guest's /tmp (a `roam-tmp-*` in the system's temporary directory), unless `--dir`
 * remaps /tmp. It is the container's own, so the restore makes it again (empty) where it is
 * missing (another machine, or an image restored a second time after the first run removed it)
 * and removes it once the guest ends, as `roam run` does. Undefined for any other image.
 */
export function ownTemporaryDirectory(state: unknown, remap: Preopen[]): string | undefined {
  if (remap.some((p) => p.guestPath === guestTemporaryDirectory)) return undefined;
  const parsed = v.safeParse(preopensOfState, state);
  if (!parsed.success) return undefined; // the restore itself reports a damaged state
  const hostPath = parsed.output.preopens.find((p) => p.guestPath === guestTemporaryDirectory)?.hostPath;
  if (!hostPath) return undefined;
  const path = resolve(hostPath);
  if (dirname(path) !== resolve(tmpdir()) || !basename(path).startsWith(temporaryDirectoryPrefix)) return undefined;
  mkdirSync(path, { recursive: true });
  return path;
}

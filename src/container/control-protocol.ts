import { join } from 'node:path';
import { cacheDir } from '../platform/paths.js';

/** Requests a named container accepts on its control socket (one JSON line each way). */
export interface CheckpointRequest {
  op: 'checkpoint';
  /** Where to write the image (absolute path). */
  image: string;
  leaveRunning: boolean;
  archive: boolean;
}

export type ControlReply =
  | { ok: true; image: string; memoryBytes: number; storedBytes: number; pauseMs: number }
  | { ok: false; error: string };

const namePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export class ControlError extends Error {}

export function checkName(name: string): string {
  if (!namePattern.test(name))
    throw new ControlError(`invalid container name "${name}" (letters, digits, '.', '_', '-'; at most 64)`);
  return name;
}

/** The unix socket a container named `name` listens on. */
export function controlSocketPath(name: string): string {
  return join(process.env.ROAM_RUNTIME_DIR ?? cacheDir('run'), `${checkName(name)}.sock`);
}

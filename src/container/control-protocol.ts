import { join } from 'node:path';
import * as v from 'valibot';
import { RoamError } from '../platform/errors.js';
import { cacheDir } from '../platform/paths.js';
import { check } from '../platform/schema.js';

/**
 * What a named container (`roam run --name`) accepts on its control socket: one JSON line each
 * way per connection.
 */
export const CheckpointRequest = v.object({
  op: v.literal('checkpoint'),
  /** Where to write the image (absolute path). */
  image: v.pipe(v.string(), v.startsWith('/', 'image: expected an absolute path')),
  leaveRunning: v.boolean(),
  archive: v.boolean(),
});
export type CheckpointRequest = v.InferOutput<typeof CheckpointRequest>;

export const CheckpointReply = v.variant('ok', [
  v.object({
    ok: v.literal(true),
    image: v.string(),
    memoryBytes: v.number(),
    storedBytes: v.number(),
    pauseMs: v.number(),
  }),
  v.object({ ok: v.literal(false), error: v.string() }),
]);
export type CheckpointReply = v.InferOutput<typeof CheckpointReply>;

/** A bad container name, no container of that name, or no usable answer from it. */
export class ControlError extends RoamError {
  readonly code = 'ROAM_CONTROL';
}

/** Parses one line of the control protocol; a malformed one is a ControlError saying what is wrong. */
export function parseLine<S extends v.GenericSchema>(schema: S, line: string, what: string): v.InferOutput<S> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new ControlError(`malformed ${what}: not JSON`, { cause: error });
  }
  const checked = check(schema, value);
  if (!checked.ok) throw new ControlError(`malformed ${what}: ${checked.message}`);
  return checked.value;
}

const namePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function checkName(name: string): string {
  if (!namePattern.test(name)) {
    throw new ControlError(`invalid container name "${name}" (letters, digits, '.', '_', '-'; at most 64)`);
  }
  return name;
}

/** The unix socket a container named `name` listens on. */
export function controlSocketPath(name: string): string {
  return join(process.env.ROAM_RUNTIME_DIR ?? cacheDir('run'), `${checkName(name)}.sock`);
}

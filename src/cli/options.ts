import { InvalidArgumentError } from 'commander';
import { RoamError } from '../platform/errors.js';

/** An error whose message is the whole story for the user: printed on one line, no stack. */
export class UserError extends RoamError {
  readonly code = 'ROAM_USAGE';
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

/** Accumulates a repeatable option (--dir A --dir B). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function tcpPort(value: string, option: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UserError(`${option} ${value}: expected a TCP port`);
  return n;
}

export function hostPort(value: string, option: string): { host: string; port: number } {
  const at = value.lastIndexOf(':');
  if (at <= 0) throw new UserError(`${option} ${value}: expected host:port`);
  return { host: value.slice(0, at), port: tcpPort(value.slice(at + 1), option) };
}

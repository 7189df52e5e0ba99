import { RoamError } from '../platform/errors.js';

/** An instance cannot be captured or restored as asked (not stopped, plain module, mismatched snapshot). */
export class SnapshotError extends RoamError {
  readonly code = 'ROAM_SNAPSHOT';
}

/** The guest trapped (unreachable, out-of-bounds access, call stack exhausted...): its own fault. */
export class GuestTrap extends RoamError {
  readonly code = 'ROAM_GUEST_TRAP';
}

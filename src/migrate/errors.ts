import { RoamError } from '../platform/errors.js';
import type { SourceSession } from './session.js';

/** A migration that failed; the message says where the container runs now. */
export class MigrationError extends RoamError {
  readonly code = 'ROAM_MIGRATION';
}

/**
 * The destination's answer to the commit was lost and its agent could not be asked: the guest stays
 * stopped here (it may run there), until `session` is settled (settle() in sender.ts, `roam recover`).
 */
export class MigrationUnsettledError extends RoamError {
  readonly code = 'ROAM_MIGRATION_UNSETTLED';

  constructor(
    message: string,
    readonly session: SourceSession,
  ) {
    super(message);
  }
}

import { RoamError } from '../platform/errors.js';

/** A migration that failed; the message says where the container runs now. */
export class MigrationError extends RoamError {
  readonly code = 'ROAM_MIGRATION';
}

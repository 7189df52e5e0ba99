import { RoamError } from '../platform/errors.js';

/** The bundle cannot run under Roam: config.json is malformed, or its args do not name a Wasm module. */
export class BundleError extends RoamError {
  readonly code = 'ROAM_OCI_BUNDLE';
}

/**
 * A container the engine named is unknown or in the wrong state for what was asked (start of a
 * running one, delete of a live one without --force), or its state file is damaged.
 */
export class RuntimeStateError extends RoamError {
  readonly code = 'ROAM_OCI_STATE';
}

/** A command line the runtime does not understand (unknown flag or subcommand, bad signal). */
export class RuntimeUsageError extends RoamError {
  readonly code = 'ROAM_OCI_USAGE';
}

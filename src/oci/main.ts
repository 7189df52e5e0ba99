#!/usr/bin/env node
/**
 * `roam-runtime` (bin/roam-runtime): an OCI runtime with runc's command line, so that Podman
 * (`podman run --runtime roam-runtime`) runs WebAssembly containers under Roam. See docs/oci.md.
 */
import { CommanderError } from 'commander';
import { describeError } from '../platform/errors.js';
import { runtimeProgram } from './commands.js';
import { RuntimeLog } from './log.js';

const log = RuntimeLog.fromArgs(process.argv.slice(2));
try {
  await runtimeProgram().parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // --help and --version end with a CommanderError too, with status 0.
    if (error.exitCode !== 0) log.error(error.message.replace(/^error: /, ''));
    process.exitCode = error.exitCode;
  } else {
    log.error(describeError(error));
    process.exitCode = 1;
  }
}

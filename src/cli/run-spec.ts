import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MultiProcessContainer, type ProcessEnd } from '../container/multi-process.js';
import { loadSpec } from '../container/spec.js';
import { temporaryDirectoryPrefix, withTemporaryDirectory } from '../container/temporary-directory.js';
import { UserError } from './options.js';

/**
 * `roam run -f SPEC`: every process of the spec in one container here. Each ending is reported on
 * stderr; the exit status is 0 if every process exited with 0, else the first other status.
 */
export async function runSpecFile(path: string): Promise<number> {
  const spec = loadSpec(path);
  if (spec.ports.length > 0)
    throw new UserError(`${path}: publishing ports needs the cluster's gateway, which roam run -f does not use yet`);
  const temporary = mkdtempSync(join(tmpdir(), temporaryDirectoryPrefix));
  try {
    const sandbox = withTemporaryDirectory(spec.dirs, spec.env, () => temporary);
    const container = await MultiProcessContainer.start(spec, {
      preopens: sandbox.preopens,
      env: sandbox.env,
      onEnd: (end) => process.stderr.write(`roam: ${describeEnd(end)}\n`),
    });
    return MultiProcessContainer.statusOf(await container.ended);
  } finally {
    rmSync(temporary, { recursive: true, force: true });
  }
}

function describeEnd(end: ProcessEnd): string {
  if (end.state === 'exited') return `${end.name} exited with status ${end.status}`;
  if (end.state === 'failed') return `${end.name} failed: ${end.reason}`;
  return `${end.name} stopped: ${end.reason ?? 'the container stopped'}`;
}

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlServer } from '../container/control.js';
import { MultiProcessContainer, type ProcessEnd } from '../container/multi-process.js';
import { loadSpec } from '../container/spec.js';
import { temporaryDirectoryPrefix, withTemporaryDirectory } from '../container/temporary-directory.js';
import type { Image } from '../image/image.js';
import type { Preopen } from '../wasi/sandbox.js';
import { UserError } from './options.js';

/**
 * `roam run -f SPEC`: every process of the spec in one container here. Each ending is reported on
 * stderr; the exit status is 0 if every process exited with 0, else the first other status. A
 * named container (`--name`) answers `roam checkpoint NAME` with one image of all its processes.
 */
export async function runSpecFile(path: string, name?: string): Promise<number> {
  const spec = loadSpec(path);
  if (spec.ports.length > 0)
    throw new UserError(`${path}: publishing ports needs the cluster's gateway, which roam run -f does not use yet`);
  const temporary = mkdtempSync(join(tmpdir(), temporaryDirectoryPrefix));
  let container: MultiProcessContainer | undefined;
  try {
    const sandbox = withTemporaryDirectory(spec.dirs, spec.env, () => temporary);
    container = await MultiProcessContainer.start(spec, { preopens: sandbox.preopens, env: sandbox.env, onEnd });
    return await runToEnd(container, name);
  } finally {
    // Kept when the container was checkpointed: the image refers to it.
    if (!container?.checkpointed) rmSync(temporary, { recursive: true, force: true });
  }
}

/**
 * `roam restore IMAGE` of a container of several processes: restores and runs them all here, as
 * `roam run -f` ran them; the exit status counts the processes that had ended before the image.
 * `temporary`: the container's own /tmp, removed at the end unless checkpointed again.
 */
export async function restoreSpecImage(
  image: Image,
  remapped: (preopens: Preopen[]) => Preopen[],
  options: { name?: string; temporary?: string },
): Promise<number> {
  const container = await MultiProcessContainer.restore(image, remapped, { onEnd });
  try {
    return await runToEnd(container, options.name);
  } finally {
    if (options.temporary && !container.checkpointed) rmSync(options.temporary, { recursive: true, force: true });
  }
}

/** Until every process ended, or a checkpoint without --leave-running ended the container (0). */
async function runToEnd(container: MultiProcessContainer, name?: string): Promise<number> {
  const control = name ? await ControlServer.listen(name, (request) => container.checkpoint(request)) : undefined;
  try {
    const ends = await container.ended;
    return container.endedByCheckpoint ? 0 : MultiProcessContainer.statusOf(ends);
  } finally {
    control?.close();
  }
}

function onEnd(end: ProcessEnd): void {
  process.stderr.write(`roam: ${describeEnd(end)}\n`);
}

function describeEnd(end: ProcessEnd): string {
  if (end.state === 'exited') return `${end.name} exited with status ${end.status}`;
  if (end.state === 'failed') return `${end.name} failed: ${end.reason}`;
  return `${end.name} stopped: ${end.reason ?? 'the container stopped'}`;
}

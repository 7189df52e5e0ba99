/**
 * The process that runs one container's guest (`node guest-process.js CONTAINER_DIR BUNDLE`),
 * started by `roam-runtime create` in a session of its own; its pid is the container's pid. It
 * checks the bundle, listens on CONTAINER_DIR/start.sock, tells `create` it is ready (a line on
 * fd 3), waits for `start`, then runs the guest until it exits and exits with its status. Its
 * stdio is what the engine gave `create` (conmon's pipes: the container's log). Signals from
 * `kill` end it as they would end a native process (no handlers: SIGTERM's default is to die).
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Container, readModuleFile } from '../container/container.js';
import { runHere } from '../container/run-here.js';
import { describeError, hasCode } from '../platform/errors.js';
import { readBundle } from './bundle.js';
import { listenForStart } from './start-channel.js';

/** What a trapping guest exits with: abort() traps in WebAssembly, and natively it is SIGABRT (128 + 6). */
const trapStatus = 134;

async function main(containerDir: string, bundle: string): Promise<number> {
  const launch = readBundle(bundle);
  const module = await readModuleFile(launch.modulePath);
  let begin!: (opening: Promise<Container>) => void;
  // The guest, once `start` came and it opened (or why it could not).
  const started = new Promise<Container>((resolve) => {
    begin = resolve;
  });
  await listenForStart(join(containerDir, 'start.sock'), async () => {
    const { args, env, preopens } = launch;
    const opening = Container.open({ kind: 'start', ...module, args, env, preopens });
    begin(opening);
    await opening;
  });
  const ready = createWriteStream('', { fd: 3 });
  ready.end('ready\n');
  try {
    return await runHere(await started);
  } catch (error) {
    process.stderr.write(`roam-runtime: ${describeError(error)}\n`);
    return hasCode(error, 'ROAM_GUEST_TRAP') ? trapStatus : 1;
  }
}

const [containerDir, bundle] = process.argv.slice(2);
try {
  process.exitCode = await main(containerDir!, bundle!);
} catch (error) {
  // Before `ready`: `create` reports that the guest process ended; the reason goes to its stderr.
  process.stderr.write(`roam-runtime: ${describeError(error)}\n`);
  process.exitCode = 1;
}

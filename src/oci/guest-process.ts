/**
 * The process that runs one container's guest (`node guest-process.js CONTAINER_DIR BUNDLE`),
 * started by `roam-runtime create` in a session of its own; its pid is the container's pid. It
 * checks the bundle and compiles the module (so that `create` refuses what cannot run), listens
 * on CONTAINER_DIR/start.sock, tells `create` it is ready or why not (a line on fd 3), waits for
 * `start`, then runs the guest until it exits and exits with its status. Its
 * stdio is what the engine gave `create` (conmon's pipes: the container's log). Signals from
 * `kill` end it as they would end a native process (no handlers: SIGTERM's default is to die).
 */
import { writeSync } from 'node:fs';
import { join } from 'node:path';
import { Container, readModuleFile } from '../container/container.js';
import { runHere } from '../container/run-here.js';
import { compileModule } from '../engine/module.js';
import { describeError, hasCode } from '../platform/errors.js';
import { readBundle } from './bundle.js';
import { type GuestReply, listenForStart } from './start-channel.js';

/** What a trapping guest exits with: abort() traps in WebAssembly, and natively it is SIGABRT (128 + 6). */
const trapStatus = 134;

/** Answers `create` on fd 3, once. */
const tellCreate = (reply: GuestReply) => writeSync(3, `${JSON.stringify(reply)}\n`);

/** Checks everything, then listens for `start`; `started` is the guest once it came (or why it could not open). */
async function prepare(containerDir: string, bundle: string): Promise<{ started: Promise<Container> }> {
  const launch = readBundle(bundle);
  const module = await readModuleFile(launch.modulePath);
  await compileModule(module.module, launch.args[0]);
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
  return { started };
}

/** The guest's exit status, or the one a native program would have for how it ended. */
async function run(started: Promise<Container>): Promise<number> {
  try {
    return await runHere(await started);
  } catch (error) {
    process.stderr.write(`roam-runtime: ${describeError(error)}\n`);
    return hasCode(error, 'ROAM_GUEST_TRAP') ? trapStatus : 1;
  }
}

const [containerDir, bundle] = process.argv.slice(2);
let prepared: { started: Promise<Container> } | undefined;
try {
  prepared = await prepare(containerDir!, bundle!);
  tellCreate({ ok: true });
} catch (error) {
  // `create` reports it where the engine reads errors.
  tellCreate({ ok: false, error: describeError(error) });
  process.exitCode = 1;
}
if (prepared) process.exitCode = await run(prepared.started);

/**
 * One container's process, started by its agent (see container-process.ts): the guest runs on a
 * thread of this process; this main thread talks to the agent over IPC and owns the migration
 * data channel. stdout and stderr are the container's log file (opened by the agent, append mode).
 */
import { readFileSync, writeSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { Container, type ContainerState, readModuleFile } from '../container/container.js';
import { createDirtyTracker } from '../migrate/dirty/select.js';
import { MigrationUnsettledError } from '../migrate/errors.js';
import { lazyRestoreSupport, type PageChannels, startLazyRestore } from '../migrate/post-copy.js';
import { migrateIn } from '../migrate/receiver.js';
import { type MigrationTarget, migrateOut, settle } from '../migrate/sender.js';
import { type SourceSession, StaleEpochError } from '../migrate/session.js';
import { nativeAddon } from '../native/addon.js';
import { AgentClient } from './client.js';
import type { ChildCommand, ChildConfig, ChildEvent, MigrateOutCommand } from './container-process.js';

const config = JSON.parse(process.env.ROAM_CONTAINER!) as ChildConfig;
const tell = (event: ChildEvent) => process.send!(event);
// The agent is this process's reason to exist: without it, nobody could reach the container.
process.on('disconnect', () => process.exit(0));

function watch(guest: Container): void {
  guest.exited.then(
    (exitCode) => {
      tell({ event: 'exited', exitCode });
      process.disconnect();
    },
    (error: Error) => {
      tell({ event: 'failed', message: error.message });
      process.disconnect();
    },
  );
}

/** Moves the guest out when the agent asks; set once the guest runs here with all of its memory. */
let migrateOutHandler: ((command: MigrateOutCommand) => void) | undefined;
/** Settles an unsettled migration when the agent asks (`roam recover`); set while there is one. */
let recoverHandler: (() => void) | undefined;
/** Incoming: the agent's answer to the `commit` asked for (one at most). */
let commitAnswer: ((granted: boolean) => void) | undefined;
process.on('message', (command: ChildCommand) => {
  if (command.op === 'commit-answer') {
    commitAnswer?.(command.granted);
    commitAnswer = undefined;
  } else if (command.op === 'recover') {
    if (recoverHandler) recoverHandler();
    else tell({ event: 'settled', outcome: 'unsettled', reason: 'no unsettled migration here' });
  } else if (migrateOutHandler) {
    migrateOutHandler(command);
  } else {
    tell({
      event: 'migration-failed',
      message: 'the container is still receiving its memory (post-copy): try again once it is all here',
    });
  }
});

/** Asks the agent for leave to run the guest of `epoch` (its EpochFence decides, see session.ts). */
function commitEpoch(epoch: number): Promise<void> {
  return new Promise((resolve, reject) => {
    commitAnswer = (granted) =>
      granted
        ? resolve()
        : reject(new StaleEpochError(`epoch ${epoch} was aborted by the source: the guest never runs here`));
    tell({ event: 'commit', epoch });
  });
}

function serve(guest: Container, directories: string[]): void {
  migrateOutHandler = (command) => {
    const memory = () => new Uint8Array(guest.memory.buffer);
    const destination = new AgentClient(command.destinationAgent.url, command.destinationAgent.token);
    const target = {
      ...command.target,
      fence: () => destination.fence(config.id, command.target.epoch).then((reply) => reply.answer),
    };
    migrateOut(
      {
        memory,
        stop: () => guest.stop(),
        capture: () => guest.capture(),
        resume: () => guest.resume(),
        directories,
        readLog: () => readFileSync(config.logPath),
        tracker: (view) => createDirtyTracker(view, command.dirtyTracking),
      },
      target,
      {
        mode: command.mode,
        maxRounds: command.maxRounds,
        hotFirst: command.hotFirst,
        postCopyFallback: command.postCopyFallback,
        destinationLazyRestore: command.destinationLazyRestore,
        onProgress: (progress) => tell({ event: 'progress', progress }),
      },
    ).then(
      (report) => {
        tell({ event: 'migrated', report });
        // Committed: the destination runs the guest; this copy goes.
        process.disconnect();
      },
      (error: Error) => {
        if (error instanceof MigrationUnsettledError) {
          // The guest stays stopped here until the destination's agent answers (roam recover).
          migrateOutHandler = undefined;
          recoverHandler = () => void recover(guest, error.session, target, directories);
          tell({ event: 'migration-unsettled', reason: error.message });
        } else {
          tell({ event: 'migration-failed', message: error.message });
        }
      },
    );
  };
}

/** Asks the destination's agent again, and carries out what the session decides. */
async function recover(
  guest: Container,
  session: SourceSession,
  target: Pick<MigrationTarget, 'fence'>,
  directories: string[],
): Promise<void> {
  const decision = await settle(session, target);
  if (decision.do === 'roll-back') {
    recoverHandler = undefined;
    guest.resume();
    serve(guest, directories);
    tell({ event: 'settled', outcome: 'resumed', reason: decision.reason });
  } else if (decision.do === 'stay-stopped') {
    tell({ event: 'settled', outcome: 'unsettled', reason: decision.reason });
  } else {
    // It ran there (in post-copy it has since lost this copy's memory server, and fails there).
    tell({ event: 'settled', outcome: 'moved' });
    process.disconnect();
  }
}

async function start(): Promise<void> {
  if (config.kind === 'start') {
    const guest = await Container.open({
      kind: 'start',
      ...(await readModuleFile(config.modulePath)),
      migratableOnly: true,
      args: config.args,
      env: config.env,
      preopens: config.preopens,
      network: config.network,
    });
    watch(guest);
    tell({ event: 'running' });
    serve(
      guest,
      config.preopens.map((p) => p.hostPath),
    );
    return;
  }
  // Incoming: one connection from the source's process, proven by the ticket; in post-copy two
  // more, the page channels, which the addon's thread reads (so nothing here may read them).
  const server = createServer({ noDelay: true, pauseOnConnect: true });
  server.once('error', (error) =>
    fail(`cannot listen for the data channel on ${config.listenHost}:${config.listenPort}: ${error.message}`),
  );
  server.listen(config.listenPort, config.listenHost, () => {
    const address = server.address();
    tell({ event: 'listening', port: typeof address === 'object' && address ? address.port : 0 });
  });
  const timeout = setTimeout(() => fail('the source never connected'), 120_000);
  // After the data channel, in post-copy: the push and the fault channel, in that order.
  const pageSockets: Socket[] = [];
  let pageChannels: ((channels: PageChannels) => void) | undefined;
  server.on('connection', (socket: Socket) => {
    if (pageSockets.length === 0 && !pageChannels) return receive(socket);
    if (!pageChannels) return socket.destroy();
    pageSockets.push(socket);
    if (pageSockets.length < 2) return;
    pageChannels({ push: pageSockets[0]!, fault: pageSockets[1]! });
    pageChannels = undefined;
    server.close();
  });
  const receive = (socket: Socket) => {
    clearTimeout(timeout);
    socket.resume();
    let guest: Container | undefined;
    let running = false;
    let lazyStarted = false;
    const channels = new Promise<PageChannels>((resolve) => (pageChannels = resolve));
    // A migration announced with post-copy that ended with a final round instead (pre-copy
    // converged): the page channels were opened for nothing.
    const dropPageChannels = () => {
      if (lazyStarted) return;
      pageChannels = undefined;
      server.close();
      for (const socket of pageSockets) socket.destroy();
    };
    migrateIn(
      socket,
      { ticket: config.ticket, epoch: config.epoch },
      {
        directories: config.directories,
        prepare: async (memoryBytes, postCopy) => {
          if (!postCopy) server.close();
          guest = await Container.open({
            kind: 'incoming',
            ...(await readModuleFile(config.modulePath)),
            memoryBytes,
            gateway: config.gateway,
          });
          return guest.memory;
        },
        lazyRestore: lazyRestoreSupport().ok
          ? async (memory, missing) => {
              lazyStarted = true;
              const opened = await within(channels, 30_000, 'the source never opened the page channels');
              return { resident: startLazyRestore(memory, missing, opened, config.ticket) };
            }
          : undefined,
        commit: commitEpoch,
        writeLog: (bytes) => writeSync(1, bytes),
        populate: (view, offset, length) => void nativeAddon()?.populate(view, offset, length),
        run: async (state) => {
          const resumedAt = await guest!.restoreAndRun(atEpoch(state, config.epoch));
          running = true;
          tell({ event: 'running' });
          return resumedAt;
        },
      },
    ).then(
      () => {
        dropPageChannels();
        watch(guest!);
        serve(guest!, config.directories);
      },
      (error: Error) =>
        fail(
          running
            ? `the source was lost during post-copy, with part of the memory still there: the container cannot go on (${error.message})`
            : `incoming migration failed: ${error.message}`,
        ),
    );
  };
}

/**
 * The state a source captured, at the epoch this migration raised the container to: its tunnel
 * attaches with it, so that the gateway refuses the copy left behind from then on.
 */
function atEpoch(state: ContainerState, epoch: number): ContainerState {
  const network = state.host.network && { ...state.host.network, epoch };
  return { ...state, epoch, host: { ...state.host, ...(network ? { network } : {}) } };
}

function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function fail(message: string): void {
  tell({ event: 'failed', message });
  process.disconnect();
}

start().catch((error: Error) => fail(error.message));

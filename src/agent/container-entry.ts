/**
 * One container's process, started by its agent (see container-process.ts): the guest runs on a
 * thread of this process; this main thread talks to the agent over IPC and owns the migration
 * data channel. stdout and stderr are the container's log file (opened by the agent, append mode).
 */
import { readFileSync, writeSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { Container, readModuleFile } from '../container/container.js';
import { createDirtyTracker } from '../migrate/dirty/select.js';
import { lazyRestoreSupport, type PageChannels, startLazyRestore } from '../migrate/post-copy.js';
import { migrateIn } from '../migrate/receiver.js';
import { migrateOut } from '../migrate/sender.js';
import { nativeAddon } from '../native/addon.js';
import { AgentClient } from './client.js';
import type { ChildCommand, ChildConfig, ChildEvent } from './container-process.js';

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
let migrateOutHandler: ((command: ChildCommand) => void) | undefined;
process.on('message', (command: ChildCommand) => {
  if (command.op !== 'migrate-out') return;
  if (migrateOutHandler) migrateOutHandler(command);
  else
    tell({
      event: 'migration-failed',
      message: 'the container is still receiving its memory (post-copy): try again once it is all here',
    });
});

function serve(guest: Container, directories: string[]): void {
  migrateOutHandler = (command) => {
    const memory = () => new Uint8Array(guest.memory.buffer);
    const destination = new AgentClient(command.confirm.url, command.confirm.token);
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
      {
        ...command.target,
        confirmRunning: () => ranAtDestination(destination),
      },
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
      (error: Error) => tell({ event: 'migration-failed', message: error.message }),
    );
  };
}

/**
 * After a lost Running answer: did the guest run at the destination? Its record there says so
 * (any status but 'incoming', which turns into 'running' a moment after the commit); no record or
 * no agent means it never will.
 */
async function ranAtDestination(destination: AgentClient): Promise<boolean> {
  for (let attempt = 0; attempt < 100; attempt++) {
    let status: string;
    try {
      status = (await destination.container(config.id)).status;
    } catch {
      return false;
    }
    if (status !== 'incoming') return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
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
    migrateIn(socket, config.ticket, {
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
      writeLog: (bytes) => writeSync(1, bytes),
      populate: (view, offset, length) => void nativeAddon()?.populate(view, offset, length),
      run: async (state) => {
        const resumedAt = await guest!.restoreAndRun(state);
        running = true;
        tell({ event: 'running' });
        return resumedAt;
      },
    }).then(
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

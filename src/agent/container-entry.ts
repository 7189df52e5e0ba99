/**
 * One container's process, started by its agent (see container-process.ts): the guest runs on a
 * thread of this process; this main thread talks to the agent over IPC and owns the migration
 * data channel. stdout and stderr are the container's log file (opened by the agent, append mode).
 */
import { readFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { GuestThread } from '../container/guest-thread.js';
import { createDirtyTracker } from '../migrate/dirty/select.js';
import { nativeAddon } from '../native/addon.js';
import { migrateIn } from '../migrate/receiver.js';
import { migrateOut } from '../migrate/sender.js';
import { AgentClient } from './client.js';
import type { ChildCommand, ChildConfig, ChildEvent } from './container-process.js';

const config = JSON.parse(process.env.ROAM_CONTAINER!) as ChildConfig;
const tell = (event: ChildEvent) => process.send!(event);
// The agent is this process's reason to exist: without it, nobody could reach the container.
process.on('disconnect', () => process.exit(0));

function watch(guest: GuestThread): void {
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

async function serve(guest: GuestThread, directories: string[]): Promise<void> {
  process.on('message', (command: ChildCommand) => {
    if (command.op !== 'migrate-out') return;
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
      { mode: command.mode, maxRounds: command.maxRounds, onProgress: (progress) => tell({ event: 'progress', progress }) },
    ).then(
      (report) => {
        tell({ event: 'migrated', report });
        // Committed: the destination runs the guest; this copy goes.
        process.disconnect();
      },
      (error: Error) => tell({ event: 'migration-failed', message: error.message }),
    );
  });
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
    const guest = await GuestThread.open({ kind: 'start', modulePath: config.modulePath, args: config.args, env: config.env, preopens: config.preopens, network: config.network });
    watch(guest);
    tell({ event: 'running' });
    await serve(guest, config.preopens.map((p) => p.hostPath));
    return;
  }
  // Incoming: one connection from the source's process, proven by the ticket.
  const server = createServer({ noDelay: true });
  server.once('error', (error) => fail(`cannot listen for the data channel on ${config.listenHost}:${config.listenPort}: ${error.message}`));
  server.listen(config.listenPort, config.listenHost, () => {
    const address = server.address();
    tell({ event: 'listening', port: typeof address === 'object' && address ? address.port : 0 });
  });
  const timeout = setTimeout(() => fail('the source never connected'), 120_000);
  server.once('connection', (socket) => {
    clearTimeout(timeout);
    server.close();
    let guest: GuestThread | undefined;
    migrateIn(socket, config.ticket, {
      directories: config.directories,
      prepare: async (memoryBytes) => {
        guest = await GuestThread.open({ kind: 'incoming', modulePath: config.modulePath, memoryBytes, gateway: config.gateway });
        return guest.memory;
      },
      writeLog: (bytes) => writeSync(1, bytes),
      populate: (view, offset, length) => void nativeAddon()?.populate(view, offset, length),
      restore: (state) => guest!.restore(state),
      run: () => guest!.resume(),
    }).then(
      () => {
        watch(guest!);
        tell({ event: 'running' });
        void serve(guest!, config.directories);
      },
      (error: Error) => fail(`incoming migration failed: ${error.message}`),
    );
  });
}

function fail(message: string): void {
  tell({ event: 'failed', message });
  process.disconnect();
}

start().catch((error: Error) => fail(error.message));

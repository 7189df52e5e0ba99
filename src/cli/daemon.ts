import { renameSync, writeFileSync } from 'node:fs';

/** Tells whoever started this daemon (roam up) where it answers: `value` as JSON, written atomically. */
export function announceReady(readyFile: string | undefined, value: object): void {
  if (!readyFile) return;
  writeFileSync(`${readyFile}.partial`, JSON.stringify({ ...value, pid: process.pid }));
  renameSync(`${readyFile}.partial`, readyFile);
}

/** Resolves at the first SIGINT or SIGTERM: the daemon should then shut down. */
export function untilStopped(): Promise<void> {
  return new Promise((done) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => done());
  });
}

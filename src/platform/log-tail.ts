import { readFileSync } from 'node:fs';

/** The last lines of a daemon's log, for an error message (empty if it cannot be read). */
export function logTail(path: string, lines = 6): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

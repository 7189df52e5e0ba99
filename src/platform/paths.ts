import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the installed package (holds runtime/, recipes/, scripts/). */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Where Roam keeps what it builds or fetches once per machine (runtime objects, foreign Node binaries, sources). */
export function cacheDir(...parts: string[]): string {
  const base = process.env.ROAM_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'roam');
  return join(base, ...parts);
}

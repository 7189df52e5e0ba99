import { after, test } from 'node:test';
import { tempDir } from '../helpers.js';
import { compareWithNative, programs } from './programs.js';

const { dir, cleanup } = tempDir();
after(cleanup);

for (const program of programs) {
  test(`${program.name}: roam cc + roam run (plain and migratable) match gcc -O2`, { timeout: 20 * 60_000 }, () =>
    compareWithNative(program, dir),
  );
}

/**
 * The real programs of recipes/ and their workloads, shared by the tests and the benchmarks:
 * each is built natively (gcc -O2) and for wasm32-wasi (roam cc), then made migratable (roam build).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '../../src/build/manifest.js';
import { cacheDir } from '../../src/platform/paths.js';
import { repoRoot, roamBin } from '../helpers.js';

export const programsDir = process.env.ROAM_PROGRAMS ?? cacheDir('programs');

export interface Workload {
  /** Program arguments (paths relative to the working directory, which the guest sees as "."). */
  args: string[];
  /** Files the run writes that must come out identical. */
  outputs: string[];
}

export interface Program {
  name: string;
  /** Fills a fresh working directory with the workload's inputs. */
  prepare(work: string): Workload;
}

/** Deterministic text with some structure (for the compressors). */
function corpus(bytes: number): string {
  const words = [
    'roam',
    'wasm',
    'migrate',
    'isa',
    'arm64',
    's390x',
    'ppc64le',
    'checkpoint',
    'restore',
    'memory',
    'page',
    'stack',
  ];
  let out = '';
  let x = 12345;
  while (out.length < bytes) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out += `${words[x % words.length]}${x % 7 === 0 ? '\n' : ' '}${x % 1000}`;
  }
  return out.slice(0, bytes);
}

export const programs: Program[] = [
  {
    name: 'sqlite',
    prepare(work) {
      const sql = spawnSync('bash', [join(repoRoot, 'recipes', 'sqlite', 'workload.sh'), '100000'], {
        encoding: 'utf8',
        maxBuffer: 1 << 28,
      });
      writeFileSync(join(work, 'workload.sql'), sql.stdout);
      // The script is read as a file (not stdin), so a checkpoint carries its read offset along.
      return { args: ['t.db', '.read workload.sql'], outputs: ['t.db'] };
    },
  },
  {
    name: 'minigzip',
    prepare(work) {
      writeFileSync(join(work, 'corpus.txt'), corpus(24 << 20));
      return { args: ['-6', 'corpus.txt'], outputs: ['corpus.txt.gz'] };
    },
  },
  {
    name: 'xz',
    prepare(work) {
      writeFileSync(join(work, 'corpus.txt'), corpus(6 << 20));
      return { args: ['-6', '-k', 'corpus.txt'], outputs: ['corpus.txt.xz'] };
    },
  },
  {
    name: 'lua',
    prepare(work) {
      copyFileSync(join(repoRoot, 'recipes', 'lua', 'bench.lua'), join(work, 'bench.lua'));
      return { args: ['bench.lua'], outputs: [] };
    },
  },
  {
    name: 'jq',
    prepare(work) {
      cpSync(join(programsDir, 'jq-tests'), work, { recursive: true });
      return { args: ['-L', 'modules', '--run-tests', 'jq.test'], outputs: [] };
    },
  },
];

export interface BuiltProgram {
  native: string;
  plain: string;
  migratable: string;
}

/** Builds (or reuses) a program's three forms; the first call may take minutes. */
export function buildProgram(name: string): BuiltProgram {
  const native = join(programsDir, `${name}.native`);
  const plain = join(programsDir, `${name}.wasm`);
  const migratable = join(programsDir, `${name}.roam.wasm`);
  mkdirSync(programsDir, { recursive: true });
  const recipe = spawnSync(join(repoRoot, 'recipes', 'build-all'), [programsDir, name], { encoding: 'utf8' });
  if (recipe.status !== 0) throw new Error(`recipes/build-all ${name} failed:\n${recipe.stdout}${recipe.stderr}`);
  // Rebuilt when the plain module or roam build itself changed.
  const stampFile = `${migratable}.stamp`;
  const stamp = sha256(
    Buffer.concat([readFileSync(plain), readFileSync(join(repoRoot, 'dist', 'src', 'build', 'instrument.js'))]),
  );
  if (!existsSync(migratable) || !existsSync(stampFile) || readFileSync(stampFile, 'utf8') !== stamp) {
    const built = spawnSync(process.execPath, [roamBin, 'build', plain, '-o', migratable], { encoding: 'utf8' });
    if (built.status !== 0) throw new Error(`roam build ${plain} failed:\n${built.stderr}`);
    writeFileSync(stampFile, stamp);
  }
  return { native, plain, migratable };
}

export interface Run {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** The environment both builds see: SQLite's shell looks for $HOME/.sqliterc. */
const guestEnv = { HOME: '.' };

export function runNative(program: BuiltProgram, work: string, workload: Workload): Run {
  return run(program.native, workload.args, work, { ...process.env, ...guestEnv });
}

/** `roam run` with the working directory preopened as "." (so relative paths behave as natively). */
export function roamRunArgs(module: string, work: string, workload: Workload, extra: string[] = []): string[] {
  return ['run', ...extra, '--dir', `${work}:.`, '--env', `HOME=${guestEnv.HOME}`, module, '--', ...workload.args];
}

export function runWasm(module: string, work: string, workload: Workload): Run {
  return run(process.execPath, [roamBin, ...roamRunArgs(module, work, workload)], work, process.env);
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Run {
  const result = spawnSync(command, args, {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 30,
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.toString() };
}

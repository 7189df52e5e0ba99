/**
 * The real programs of recipes/ and their workloads, shared by the tests and the benchmarks:
 * each is built natively (gcc -O2) and for wasm32-wasi (roam cc), then made migratable (roam build).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '../../src/build/manifest.js';
import type { Isa } from '../../src/platform/isa.js';
import { cacheDir } from '../../src/platform/paths.js';
import { repoRoot, roam, roamBin, roamInBackground, sleep, waitForContainer } from '../helpers.js';

export const programsDir = process.env.ROAM_PROGRAMS ?? cacheDir('programs');

export interface Workload {
  /** Program arguments (paths relative to the working directory, which the guest sees as "."). */
  args: string[];
  /** Files the run writes that must come out identical. */
  outputs: string[];
  /** A file of the working directory the program reads as its standard input (else none). */
  stdin?: string;
}

export interface Program {
  name: string;
  /**
   * Fills a fresh working directory with the workload's inputs. `scale` (default 1: the tests')
   * multiplies the work, deterministically: the bench passes `benchScale`.
   */
  prepare(work: string, scale?: number): Workload;
  /**
   * How much larger the bench's workload is than the test's, so that the native run takes a
   * second or more and start-up (Node, compiling the module: about 0.4 s) does not make the
   * ratios (default 1).
   */
  benchScale?: number;
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

/** Copies a directory the recipe left in programsDir (fonts, data files) into the work dir. */
function fromRecipe(dir: string, work: string, as = dir): void {
  cpSync(join(programsDir, dir), join(work, as), { recursive: true });
}

/**
 * Markdown for cmark and discount: this repository's own documents. They change with the
 * repository, and both builds of a program read the same text, so outputs still compare.
 */
function markdownDocs(): string {
  return ['README.md', 'CONTRIBUTING.md', 'docs/posix.md']
    .map((f) => readFileSync(join(repoRoot, f), 'utf8'))
    .join('\n');
}

/** A deterministic directory tree for `tree`: nested directories, files of several names. */
function directoryTree(root: string, depth: number): void {
  mkdirSync(root, { recursive: true });
  for (let i = 0; i < 6; i++)
    writeFileSync(join(root, `${['notes', 'data', '.hidden', 'Zeta', 'alpha'][i % 5]}-${i}.txt`), `${i}`);
  if (depth > 0) for (const name of ['src', 'lib', 'Docs', 'tests']) directoryTree(join(root, name), depth - 1);
}

/**
 * The corpus (recipes/corpus/): real C programs of several kinds, each built with its own build
 * system (Makefile, configure, CMake) from Debian's source, unchanged.
 */
export const corpusPrograms: Program[] = [
  {
    name: 'bzip2',
    benchScale: 2,
    prepare(work, scale = 1) {
      writeFileSync(join(work, 'corpus.txt'), corpus(scale * (4 << 20)));
      return { args: ['-9', '-k', 'corpus.txt'], outputs: ['corpus.txt.bz2'] };
    },
  },
  {
    name: 'lz4',
    benchScale: 2,
    prepare(work, scale = 1) {
      writeFileSync(join(work, 'corpus.txt'), corpus(scale * (6 << 20)));
      return { args: ['-9', '-q', 'corpus.txt', 'corpus.txt.lz4'], outputs: ['corpus.txt.lz4'] };
    },
  },
  {
    name: 'zstd',
    benchScale: 3,
    prepare(work, scale = 1) {
      writeFileSync(join(work, 'corpus.txt'), corpus(scale * (4 << 20)));
      return { args: ['-q', '-12', 'corpus.txt', '-o', 'corpus.txt.zst'], outputs: ['corpus.txt.zst'] };
    },
  },
  {
    name: 'mawk',
    benchScale: 2,
    prepare(work, scale = 1) {
      writeFileSync(join(work, 'corpus.txt'), corpus(scale * (3 << 20)));
      writeFileSync(
        join(work, 'count.awk'),
        [
          '{ lines++; for (i = 1; i <= NF; i++) { words++; count[$i]++; if ($i ~ /^[0-9]+$/) sum += $i } }',
          'END {',
          '  printf "%d lines, %d words, sum %d, mean %.6f\\n", lines, words, sum, sum / words',
          '  n = split("roam wasm migrate isa arm64 s390x ppc64le checkpoint restore memory page stack", w, " ")',
          '  for (i = 1; i <= n; i++) printf "%-10s %8d %s\\n", w[i], count[w[i]], toupper(substr(w[i], 1, 3))',
          `  for (i = 1; i <= ${scale * 5000000}; i++) x += sin(i) * sqrt(i); printf "%.6f\\n", x`,
          '}',
        ].join('\n'),
      );
      return { args: ['-f', 'count.awk', 'corpus.txt'], outputs: [] };
    },
  },
  {
    name: 'bc',
    benchScale: 2,
    prepare(work, scale = 1) {
      writeFileSync(
        join(work, 'calc.bc'),
        [
          `scale = ${Math.round(600 * Math.sqrt(scale))}`,
          '4 * a(1)',
          'e(1)',
          'l(2)',
          's(1) + c(1)',
          'sqrt(2)',
          'define f(n) {',
          '  if (n < 2) return (n)',
          '  return (f(n - 1) + f(n - 2))',
          '}',
          `f(${20 + Math.round(Math.log2(scale))})`,
          '2 ^ 1000',
          'obase = 16',
          '2 ^ 256 - 1',
          'quit',
          '',
        ].join('\n'),
      );
      return { args: ['-l', 'calc.bc'], outputs: [] };
    },
  },
  {
    name: 'units',
    benchScale: 200,
    prepare(work, scale = 1) {
      fromRecipe('units-data', work, '.');
      // Conversions from standard input, one "You have" / "You want" pair after another.
      const pairs = [
        ['furlongs/fortnight', 'm/s'],
        ['miles', 'km'],
        ['lightyear', 'parsec'],
        ['kWh', 'BTU'],
        ['mph', 'knots'],
        ['acres', 'hectare'],
        ['cups', 'ml'],
      ];
      const queries = Array.from({ length: 50 * scale }, (_, i) => {
        const [have, want] = pairs[i % pairs.length]!;
        return `${i + 1} ${have}\n${want}\n`;
      });
      writeFileSync(join(work, 'queries.txt'), queries.join(''));
      return { args: ['-f', 'definitions.units', '-v'], outputs: [], stdin: 'queries.txt' };
    },
  },
  {
    name: 'figlet',
    benchScale: 1000,
    prepare(work, scale = 1) {
      fromRecipe('figlet-fonts', work, 'fonts');
      // One banner per line of standard input.
      const lines = Array.from({ length: 4 * scale }, (_, i) =>
        i % 2 ? `line ${i}: x64 arm64 ppc64le s390x armv7l` : 'Roam moves running programs between CPUs',
      );
      writeFileSync(join(work, 'banners.txt'), `${lines.join('\n')}\n`);
      return { args: ['-d', 'fonts', '-f', 'big', '-w', '160', '-c'], outputs: [], stdin: 'banners.txt' };
    },
  },
  {
    name: 'tree',
    benchScale: 64,
    prepare(work, scale = 1) {
      // 4^depth directories: scale 64 is three levels more.
      directoryTree(join(work, 'd'), 3 + Math.round(Math.log(scale) / Math.log(4)));
      return { args: ['--charset=ascii', '-a', '-F', 'd'], outputs: [] };
    },
  },
  {
    name: 'indent',
    benchScale: 300,
    prepare(work, scale = 1) {
      const source = readFileSync(join(repoRoot, 'runtime', 'posix', 'signals.c'), 'utf8');
      writeFileSync(join(work, 'in.c'), source.repeat(4 * scale).replace(/#include/g, '#  include'));
      return { args: ['-gnu', '-i4', '-l100', 'in.c', '-o', 'out.c'], outputs: ['out.c'] };
    },
  },
  {
    name: 'cmark',
    benchScale: 10,
    prepare(work, scale = 1) {
      writeFileSync(join(work, 'doc.md'), markdownDocs().repeat(20 * scale));
      return { args: ['--smart', 'doc.md'], outputs: [] };
    },
  },
  {
    name: 'discount',
    benchScale: 10,
    prepare(work, scale = 1) {
      writeFileSync(join(work, 'doc.md'), markdownDocs().repeat(20 * scale));
      return { args: ['doc.md'], outputs: [] };
    },
  },
  {
    name: 'xmlwf',
    benchScale: 20,
    prepare(work, scale = 1) {
      const items = Array.from(
        { length: 20000 * scale },
        (_, i) =>
          `<item id="${i}" kind="${i % 3 ? 'b' : 'a'}"><name>n&amp;${i}</name><v>${(i * 7919) % 1000}</v></item>`,
      );
      writeFileSync(join(work, 'data.xml'), `<?xml version="1.0"?>\n<root>${items.join('\n')}</root>\n`);
      mkdirSync(join(work, 'out'));
      return { args: ['-d', 'out', 'data.xml'], outputs: ['out/data.xml'] };
    },
  },
];

/**
 * Why WebAssembly modules do not run as programs here (false when they do): scripts/setup
 * registers its launcher with binfmt_misc, which runs a checkout's bin/roam-binfmt. Builds that
 * run a program they have just compiled (bc, discount) need it.
 */
export function wasmProgramsMissing(): string | false {
  const entry = '/proc/sys/fs/binfmt_misc/roam-wasm';
  const what = "binfmt_misc runs WebAssembly modules through roam's launcher (scripts/setup)";
  if (!existsSync(entry)) return what;
  const lines = readFileSync(entry, 'utf8').split('\n');
  const registered = lines.includes('enabled') && lines.includes(`interpreter ${binfmtLauncher}`);
  // The launcher runs the newest checkout that ran setup and still exists: any will do.
  const checkouts = existsSync(binfmtCheckouts) ? readFileSync(binfmtCheckouts, 'utf8').split('\n') : [];
  const runnable = checkouts.some((checkout) => checkout && existsSync(join(checkout, 'bin', 'roam-binfmt')));
  return registered && runnable ? false : what;
}

/** Where scripts/setup puts binfmt_misc's interpreter for WebAssembly modules, and the checkouts it picks from. */
const binfmtLauncher = '/usr/local/lib/roam/binfmt-launcher';
const binfmtCheckouts = '/usr/local/lib/roam/checkouts';

/** Corpus programs whose build runs a program it has just compiled (bc's fbc, discount's mktags). */
export const buildsRunPrograms = new Set(['bc', 'discount']);

export interface BuiltProgram {
  native: string;
  plain: string;
  migratable: string;
}

/**
 * Builds (or reuses) a program's three forms; the first call may take minutes. `artifact` names
 * another module of the same recipe (redis's redis-cli), which has no native form here.
 */
export function buildProgram(name: string, artifact = name): BuiltProgram {
  const native = join(programsDir, `${artifact}.native`);
  const plain = join(programsDir, `${artifact}.wasm`);
  const migratable = join(programsDir, `${artifact}.roam.wasm`);
  mkdirSync(programsDir, { recursive: true });
  const recipe = spawnSync(join(repoRoot, 'recipes', 'build-all'), [programsDir, name], { encoding: 'utf8' });
  if (recipe.status !== 0) throw new Error(`recipes/build-all ${name} failed:\n${recipe.stdout}${recipe.stderr}`);
  // Rebuilt when the plain module or roam build itself changed.
  const stampFile = `${migratable}.stamp`;
  const buildCode = ['instrument.js', 'callgraph.js', 'resume-clones.js', 'loop-entries.js', 'manifest.js'].map(
    (file) => readFileSync(join(repoRoot, 'dist', 'src', 'build', file)),
  );
  const stamp = sha256(Buffer.concat([readFileSync(plain), ...buildCode]));
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
  return runProgram(program.native, workload.args, work, { ...process.env, ...guestEnv }, workload.stdin);
}

/** `roam run` with the working directory preopened as "." (so relative paths behave as natively). */
export function roamRunArgs(module: string, work: string, workload: Workload, extra: string[] = []): string[] {
  return ['run', ...extra, '--dir', `${work}:.`, '--env', `HOME=${guestEnv.HOME}`, module, '--', ...workload.args];
}

export function runWasm(module: string, work: string, workload: Workload): Run {
  return runProgram(
    process.execPath,
    [roamBin, ...roamRunArgs(module, work, workload)],
    work,
    process.env,
    workload.stdin,
  );
}

/** Runs `command` in `cwd` with `stdin` (a file of cwd, else none) and returns what it printed. */
export function runProgram(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, stdin?: string): Run {
  const input = stdin === undefined ? 'ignore' : openSync(join(cwd, stdin), 'r');
  try {
    const result = spawnSync(command, args, {
      cwd,
      env,
      stdio: [input, 'pipe', 'pipe'],
      maxBuffer: 1 << 30,
    });
    if (result.error) throw result.error;
    return { status: result.status, stdout: result.stdout, stderr: result.stderr.toString() };
  } finally {
    if (typeof input === 'number') closeSync(input);
  }
}

/**
 * Runs `program`'s workload natively and as wasm (`forms`), each in a fresh directory under
 * `dir`: exit status, stdout, stderr and every output file must be identical.
 */
export function compareWithNative(
  program: Program,
  dir: string,
  forms: readonly ('plain' | 'migratable')[] = ['plain', 'migratable'],
): void {
  const built = buildProgram(program.name);
  const runs = (['native', ...forms] as const).map((form) => {
    const work = join(dir, `${program.name}-${form}`);
    mkdirSync(work, { recursive: true });
    const workload = program.prepare(work);
    const run =
      form === 'native'
        ? runNative(built, work, workload)
        : runWasm(form === 'plain' ? built.plain : built.migratable, work, workload);
    return { form, run, files: workload.outputs.map((f) => readFileSync(join(work, f))) };
  });
  const [native, ...wasm] = runs;
  assert.equal(native!.run.status, 0, native!.run.stderr);
  assert.ok(
    native!.run.stdout.length + native!.files.reduce((n, f) => n + f.length, 0) > 0,
    'the workload produces output',
  );
  for (const other of wasm) {
    assert.equal(other.run.stderr, native!.run.stderr, `${other.form}: stderr`);
    assert.equal(other.run.status, native!.run.status, `${other.form}: exit status`);
    assert.ok(other.run.stdout.equals(native!.run.stdout), `${other.form}: stdout identical`);
    for (const [i, file] of other.files.entries()) {
      assert.ok(file.equals(native!.files[i]!), `${other.form}: output file ${i} identical`);
    }
  }
}

/**
 * Runs `program` on x64 (migratable build) as a named container (ROAM_RUNTIME_DIR must be set),
 * checkpoints it after `delayMs` and resumes it on `isa` in a copy of its working directory, as a
 * migration would ship it; the concatenated output and every result file must equal an
 * uninterrupted native run.
 */
export async function checkpointAndResume(program: Program, isa: Isa, delayMs: number, dir: string): Promise<void> {
  const runtimeDir = process.env.ROAM_RUNTIME_DIR;
  assert.ok(runtimeDir, 'ROAM_RUNTIME_DIR is set');
  const name = program.name;
  const built = buildProgram(name);
  const reference = join(dir, `${name}-${isa}-native`);
  mkdirSync(reference, { recursive: true });
  const workload = program.prepare(reference);
  const expected = runNative(built, reference, workload);
  assert.equal(expected.status, 0, expected.stderr);

  const source = join(dir, `${name}-${isa}-source`);
  mkdirSync(source, { recursive: true });
  program.prepare(source);
  const container = `${name}-${isa}`;
  const first = roamInBackground(roamRunArgs(built.migratable, source, workload, ['--name', container]));
  await waitForContainer(container, runtimeDir, 60_000);
  await sleep(delayMs);
  const image = join(dir, `${container}.img`);
  const checkpoint = roam(['checkpoint', container, '-o', image, '--archive']);
  assert.equal(checkpoint.status, 0, `checkpoint: ${checkpoint.stderr}`);
  const before = await first.done;
  assert.equal(before.status, 0, before.stderr);

  const destination = join(dir, `${name}-${isa}-destination`);
  cpSync(source, destination, { recursive: true });
  const after = roam(['restore', image, '--isa', isa, '--dir', `${destination}:.`]);
  assert.equal(after.status, 0, after.stderr);
  assert.equal(before.stdout + after.stdout, expected.stdout.toString(), 'stdout continues exactly where it stopped');
  assert.equal(before.stderr + after.stderr, expected.stderr, 'stderr too');
  for (const file of workload.outputs) {
    assert.ok(
      readFileSync(join(destination, file)).equals(readFileSync(join(reference, file))),
      `${file} is byte-identical`,
    );
  }
}

import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { RoamError } from '../platform/errors.js';
import { compileFlags, findToolchain, type Toolchain } from './toolchain.js';

/** The toolchain, with the arguments bin/roam-cc and bin/roam-c++ use in its memo. */
const toolchainWithFastPath = () => findToolchain(fastPathArguments);

/** 8 MiB, Linux's default: real programs (jq's parser, SQLite's planner) recurse deeply. */
export const defaultStackSize = 8 * 1024 * 1024;

export type Language = 'c' | 'c++';

const noLinkFlags = new Set(['-c', '-S', '-E', '-M', '-MM', '-fsyntax-only']);
const queryFlags = new Set([
  '--version',
  '-dumpversion',
  '-dumpmachine',
  '-print-search-dirs',
  '-print-libgcc-file-name',
]);
/**
 * Flags that make sense for native builds but not for wasm32-wasi: no shared objects, and threads
 * need no flag (green threads are always there).
 */
const droppedFlags = new Set(['-pthread', '-pthreads', '-rdynamic', '-fPIC', '-fpic', '-fPIE', '-fpie', '-pie']);
/** wasi-libc's optional parts every program gets: its emulations, and printf/scanf of long double (%Lf). */
const emulationLibraries = [
  '-lwasi-emulated-signal',
  '-lwasi-emulated-process-clocks',
  '-lwasi-emulated-getpid',
  '-lwasi-emulated-mman',
  '-lc-printscan-long-double',
];
/** Options whose value is the next argument (so that value is not an input file). */
const optionsWithValue = new Set([
  '-o',
  '-I',
  '-D',
  '-U',
  '-L',
  '-l',
  '-x',
  '-include',
  '-imacros',
  '-isystem',
  '-idirafter',
  '-iquote',
  '-MF',
  '-MT',
  '-MQ',
  '-Xlinker',
  '-Xclang',
  '-mllvm',
  '-arch',
]);
const sourceFile = /\.(c|cc|cpp|cxx|c\+\+|C|s|S|m)$/;

/** A `roam cc` command line that cannot work for wasm32-wasi. */
export class CcUsageError extends RoamError {
  readonly code = 'ROAM_CC_USAGE';
}

/**
 * Translates a gcc-style command line into a clang command line for wasm32-wasi.
 * Works for single commands and for autoconf/make builds (`CC="roam cc"`).
 */
export function clangArguments(args: string[], language: Language = 'c'): string[] {
  return argumentsFor(toolchainWithFastPath(), args, language);
}

function argumentsFor(toolchain: Toolchain, args: string[], language: Language): string[] {
  const kept = args.filter((arg) => !droppedFlags.has(arg));
  if (kept.some((arg) => queryFlags.has(arg) || arg.startsWith('-print-'))) return ['--target=wasm32-wasi', ...kept];

  const compile = [
    // libc++'s headers come first: they #include_next the C library's.
    ...(language === 'c++' ? ['-nostdinc++', '-isystem', toolchain.cxxInclude, '-fno-exceptions'] : []),
    ...compileFlags(toolchain),
    // setjmp/longjmp through host invoke_* wrappers: unlike Wasm EH it survives Asyncify.
    '-mllvm',
    '-enable-emscripten-sjlj',
  ];
  const links = !kept.some((arg) => noLinkFlags.has(arg));
  if (!links) return [...compile, ...kept];

  const userSetStack = kept.some((arg) => arg.includes('stack-size'));
  const command = !kept.some(
    (arg) => arg === '-nostartfiles' || arg === '-nostdlib' || arg.startsWith('-mexec-model=reactor'),
  );
  return [
    ...compile,
    ...(command ? ['-nostartfiles', toolchain.commandStart] : []),
    ...withArchivesForSharedLibraries(kept),
    ...toolchain.runtimeObjects,
    '-Wl,--stack-first', // an overflow runs below address 0 and traps instead of corrupting data
    ...(userSetStack ? [] : [`-Wl,-z,stack-size=${defaultStackSize}`]),
    '-Wl,--export-table', // invoke_* wrappers call through the table
    '-Wl,--wrap=fstat', // the POSIX layer tells pipes (FIFOs) from sockets
    ...lockedLibcFunctions.map((name) => `-Wl,--wrap=${name}`),
    toolchain.posixLibrary,
    ...emulationLibraries,
  ];
}

/**
 * wasi-libc's malloc and stdio functions, which take no locks: the POSIX layer wraps each with a
 * lock once a program has threads (runtime/posix/libc-locks.c).
 */
const lockedLibcFunctions = [
  ...['malloc', 'free', 'calloc', 'realloc', 'aligned_alloc', 'posix_memalign', 'malloc_usable_size'],
  ...['fgetc', 'getc', 'getchar', 'fgets', 'fgetln', 'fread', 'getdelim', 'getline', 'ungetc'],
  ...['fputc', 'putc', 'putchar', 'fputs', 'puts', 'fwrite', 'perror'],
  ...['printf', 'fprintf', 'vprintf', 'vfprintf', 'scanf', 'fscanf', 'vscanf', 'vfscanf'],
  ...['fseek', 'fseeko', 'ftell', 'ftello', 'fgetpos', 'fsetpos', 'rewind', 'setvbuf'],
  ...['fopen', 'fdopen', 'fclose', 'fflush'],
];

/**
 * What bin/roam-cc and bin/roam-c++ need to run clang without Node, kept in the toolchain's memo
 * (as roam_c_compile, roam_cxx_link...): for each language the compiler, the arguments before the
 * user's in a command that does not link (-c, -E, -S, -M, -MM, -fsyntax-only), and those before
 * and after the user's in a link (after: also for a link that sets its own stack size). They are
 * argumentsFor's own output around a placeholder, so the two paths cannot differ; the scripts
 * leave to Node every command line where argumentsFor would do more than put the user's
 * arguments there (see bin/roam-cc).
 */
function fastPathArguments(toolchain: Toolchain): Record<string, string[]> {
  const placeholder = '\0user arguments\0';
  const around = (language: Language, args: string[]) => {
    const all = argumentsFor(toolchain, args, language);
    const at = all.indexOf(placeholder);
    return [all.slice(0, at), all.slice(at + 1)] as const;
  };
  const lists: Record<string, string[]> = {};
  for (const [language, name] of [
    ['c', 'c'],
    ['c++', 'cxx'],
  ] as const) {
    const [compile, afterCompile] = around(language, [placeholder, '-c']);
    const [link, linkEnd] = around(language, [placeholder]);
    // A link that sets its own stack size (the user's flag comes first after the placeholder).
    const ownStack = '-Wl,-z,stack-size=65536';
    const [ownStackLink, ownStackEnd] = around(language, [placeholder, ownStack]);
    if (afterCompile.join(' ') !== '-c' || ownStackLink.join('\0') !== link.join('\0') || ownStackEnd[0] !== ownStack) {
      throw new Error("roam cc: a compile or link puts arguments of its own among the user's");
    }
    lists[`${name}_compiler`] = [compilerOf(toolchain, language)];
    lists[`${name}_compile`] = compile;
    lists[`${name}_link`] = link;
    lists[`${name}_link_end`] = linkEnd;
    lists[`${name}_link_end_own_stack`] = ownStackEnd.slice(1);
  }
  return lists;
}

/** Runs clang for `roam cc ARGS` (or clang++ for `roam c++ ARGS`); returns its exit status. */
export function runCc(args: string[], language: Language = 'c'): number {
  const toolchain = toolchainWithFastPath();
  if (args.includes('-shared')) return buildStaticLibrary(toolchain, args, language);
  return run(compilerOf(toolchain, language), clangArguments(args, language));
}

const compilerOf = (toolchain: Toolchain, language: Language) =>
  language === 'c++' ? toolchain.clangxx : toolchain.clang;

function run(command: string, args: string[]): number {
  const result = spawnSync(command, args, { stdio: 'inherit' });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

/**
 * `-shared -o libfoo.so a.c b.o`: WebAssembly has no shared libraries, so the output becomes a
 * static archive of the same name (wasm-ld reads an archive whatever its name, so a later
 * `-lfoo` links it). Sources are compiled first; objects and archives go in as they are.
 */
function buildStaticLibrary(toolchain: Toolchain, args: string[], language: Language): number {
  const { inputs, output, flags } = splitCommandLine(args.filter((arg) => arg !== '-shared'));
  if (!output) throw new CcUsageError('roam cc -shared: name the library with -o');
  process.stderr.write(`roam cc: WebAssembly has no shared libraries: ${output} is a static archive instead\n`);
  const compileOnly = flags.filter((group) => !/^-(Wl,|[lL]|Xlinker)/.test(group[0]!)).flat();
  const work = mkdtempSync(join(tmpdir(), 'roam-shared-'));
  try {
    const members: string[] = [];
    for (const [index, input] of inputs.entries()) {
      if (!sourceFile.test(input)) {
        members.push(input);
        continue;
      }
      const object = join(work, `${index}-${basename(input)}.o`);
      const status = run(
        compilerOf(toolchain, language),
        clangArguments([...compileOnly, '-c', input, '-o', object], language),
      );
      if (status !== 0) return status;
      members.push(object);
    }
    rmSync(output, { force: true });
    return run(toolchain.ar, ['rcs', output, ...members]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * `-lfoo` where the -L directories hold no libfoo.a but a libfoo.so that `roam cc -shared` made
 * (an archive): wasm-ld looks for .a files only, so such a library is named by its path.
 */
function withArchivesForSharedLibraries(args: string[]): string[] {
  const dirs: string[] = [];
  for (const [i, arg] of args.entries()) {
    if (arg === '-L' && args[i + 1]) dirs.push(args[i + 1]!);
    else if (arg.startsWith('-L') && arg.length > 2) dirs.push(arg.slice(2));
  }
  if (dirs.length === 0) return args;
  return args.map((arg) => {
    if (!arg.startsWith('-l') || arg.length <= 2) return arg;
    const name = arg.slice(2);
    if (dirs.some((dir) => existsSync(join(dir, `lib${name}.a`)))) return arg;
    return dirs.map((dir) => join(dir, `lib${name}.so`)).find(isArchive) ?? arg;
  });
}

function isArchive(path: string): boolean {
  try {
    const fd = openSync(path, 'r');
    try {
      const magic = Buffer.alloc(8);
      readSync(fd, magic, 0, 8, 0);
      return magic.toString('latin1') === '!<arch>\n';
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

/**
 * The input files, the output (-o) and every other option of a compiler command line, each with
 * its value when that is a separate argument.
 */
function splitCommandLine(args: string[]): { inputs: string[]; output: string | undefined; flags: string[][] } {
  const inputs: string[] = [];
  const flags: string[][] = [];
  let output: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '-o') {
      output = args[++i];
    } else if (optionsWithValue.has(arg)) {
      flags.push([arg, args[++i] ?? '']);
    } else if (arg.startsWith('-')) {
      flags.push([arg]);
    } else {
      inputs.push(arg);
    }
  }
  return { inputs, output, flags };
}

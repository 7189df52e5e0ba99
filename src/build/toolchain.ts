import { execFileSync } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { RoamError } from '../platform/errors.js';
import { cacheDir, packageRoot } from '../platform/paths.js';

/** clang + wasi-libc as installed by scripts/setup (Debian: clang, lld, wasi-libc, libclang-rt-14-dev-wasm32). */
export interface Toolchain {
  clang: string;
  /** clang++ for `roam c++` (the same clang as a C++ driver). */
  clangxx: string;
  /** llvm-ar, for the static archives that stand in for shared libraries. */
  ar: string;
  /** libc++'s headers for wasm32-wasi (libc++-14-dev-wasm32). */
  cxxInclude: string;
  /** clang's own headers (stddef.h, stdarg.h...), searched after ours and before wasi-libc's. */
  resourceInclude: string;
  sysrootInclude: string;
  /** Objects every linked module gets: the setjmp/longjmp runtime and shadow-stack accessors. */
  runtimeObjects: string[];
  /** Replaces wasi-libc's crt1-command.o in commands (see runtime/src/crt1-command.c). */
  commandStart: string;
  /** libroam-posix.a: the POSIX layer every link gets (runtime/posix/, docs/posix.md); weak definitions. */
  posixLibrary: string;
}

const runtimeSources = ['sjlj.c', 'stack.s'];

/** clang or wasi-libc is missing: scripts/setup installs them. */
export class ToolchainError extends RoamError {
  readonly code = 'ROAM_TOOLCHAIN';
}

let cached: Toolchain | undefined;

/**
 * Named argument lists a caller keeps in the memo beside the toolchain (roam cc: the arguments
 * bin/roam-cc passes clang without starting Node). They must follow from the toolchain alone.
 */
export type MemoArguments = (toolchain: Toolchain) => Record<string, string[]>;

/**
 * The memo's format: bin/roam-cc and bin/roam-c++ read only a memo of the format they know
 * (`roam_memo=N`), so a change here bumps it there too.
 */
export const memoFormat = 2;

/**
 * The toolchain, with the runtime objects and the POSIX layer built (once, into the cache).
 * configure runs roam cc a thousand times, so a call reuses what an earlier one found: a memo per
 * checkout in the cache, valid while the files it was made from keep their sizes and mtimes (a
 * few stat calls instead of hashing the layer's sources and asking clang). On any change, or a
 * memo that does not read back whole, it is worked out again (content hashes name the outputs).
 *
 * The memo is a POSIX shell file (memoPath) that bin/roam-cc sources: it checks the same
 * fingerprint with one `stat` call and then runs clang itself, with the argument lists `extra`
 * adds, so most compiler calls of a build never start Node.
 */
export function findToolchain(extra: MemoArguments = () => ({})): Toolchain {
  if (cached) return cached;
  const clang = process.env.ROAM_CLANG ?? 'clang';
  const found = findExecutable(clang);
  if (!found) {
    throw new ToolchainError(`cannot find '${clang}': install the toolchain with scripts/setup (or set ROAM_CLANG)`);
  }
  const sysrootInclude = process.env.ROAM_WASI_INCLUDE ?? '/usr/include/wasm32-wasi';
  const path = memoPath();
  const files = fingerprintFiles(found, sysrootInclude);
  const fingerprint = { env: memoEnvironment(), found, files, stat: statFingerprint(files) };
  cached =
    readMemo(path, fingerprint) ??
    writeMemo(path, fingerprint, buildToolchain(clang, realpathSync(found), sysrootInclude), extra);
  return cached;
}

/**
 * Where this checkout's memo lives: the checkout's path under the cache, so that bin/roam-cc
 * finds it by concatenating strings (no hashing in a shell).
 */
export function memoPath(): string {
  return join(cacheDir('runtime', 'memo'), packageRoot, 'toolchain.sh');
}

function buildToolchain(clang: string, binary: string, sysrootInclude: string): Toolchain {
  if (!existsSync(join(sysrootInclude, 'stdio.h'))) {
    throw new ToolchainError(`wasi-libc headers not found in ${sysrootInclude}: run scripts/setup`);
  }
  const resourceDir = execFileSync(clang, ['-print-resource-dir'], { encoding: 'utf8' }).trim();
  const toolchain: Toolchain = {
    clang,
    // clang picks its driver mode from its name: clang++ next to the clang that was found.
    clangxx: process.env.ROAM_CLANGXX ?? `${binary}++`,
    // llvm-ar from the same LLVM as clang (package llvm-14).
    ar: process.env.ROAM_AR ?? join(dirname(binary), 'llvm-ar'),
    cxxInclude: join(sysrootInclude, 'c++', 'v1'),
    resourceInclude: join(resourceDir, 'include'),
    sysrootInclude,
    runtimeObjects: [],
    commandStart: '',
    posixLibrary: '',
  };
  toolchain.runtimeObjects = runtimeSources.map((source) => buildRuntimeObject(toolchain, source));
  toolchain.commandStart = buildRuntimeObject(toolchain, 'crt1-command.c');
  toolchain.posixLibrary = buildPosixLibrary(toolchain);
  return toolchain;
}

/** What a memo is valid for: checked by findToolchain here and by bin/roam-cc, the same way. */
interface Fingerprint {
  /** The variables that choose tools, as `${NAME+=$NAME}|...` expands in a shell (unset and empty differ). */
  env: string;
  /** Where clang was found on PATH (before symlinks are resolved), as `command -v` prints it. */
  found: string;
  /** The files the toolchain is made from (directories too: adding a file changes theirs). */
  files: string[];
  /** `stat -L -c '%s %.9Y' FILES` of those files: size and mtime, one line each (none for a missing file). */
  stat: string;
}

/** Variables the toolchain depends on, in the order bin/roam-cc writes them. */
const memoVariables = ['ROAM_CLANG', 'ROAM_CLANGXX', 'ROAM_AR', 'ROAM_WASI_INCLUDE'];

function memoEnvironment(): string {
  return memoVariables.map((name) => (process.env[name] === undefined ? '' : `=${process.env[name]}`)).join('|');
}

/**
 * What the toolchain is made from: the clang binary, wasi-libc's headers, roam cc's runtime
 * sources, the POSIX layer and its headers (with their directories), the code that turns them
 * into clang arguments (this file, cc.js, the scripts that read the memo, package.json: another
 * roam), and the objects built from them.
 */
function fingerprintFiles(found: string, sysrootInclude: string): string[] {
  const runtime = join(packageRoot, 'runtime');
  const dirsAndFiles = (dir: string) => [dir, ...filesUnder(dir, '', true).map((file) => join(dir, file))];
  return [
    found,
    join(sysrootInclude, 'stdio.h'),
    ...[...runtimeSources, 'crt1-command.c'].map((source) => join(runtime, 'src', source)),
    ...dirsAndFiles(join(runtime, 'posix')),
    ...dirsAndFiles(join(runtime, 'include')),
    join(packageRoot, 'package.json'),
    join(packageRoot, 'bin', 'roam-cc'),
    join(packageRoot, 'bin', 'roam-c++'),
    join(packageRoot, 'dist', 'src', 'build', 'cc.js'),
    join(packageRoot, 'dist', 'src', 'build', 'toolchain.js'),
  ];
}

/** What `stat -L -c '%s %.9Y' FILES` prints (GNU coreutils), from stat calls in this process. */
function statFingerprint(files: string[]): string {
  const lines: string[] = [];
  for (const file of files) {
    const stat = statSync(file, { bigint: true, throwIfNoEntry: false });
    if (!stat) continue;
    const nanoseconds = String(stat.mtimeNs % 1_000_000_000n).padStart(9, '0');
    lines.push(`${stat.size} ${stat.mtimeNs / 1_000_000_000n}.${nanoseconds}`);
  }
  return lines.join('\n');
}

/** The toolchain's fields in the memo: `roam_<field>=<one shell word>` (runtimeObjects: a word list). */
const memoFields = [
  'clang',
  'clangxx',
  'ar',
  'cxxInclude',
  'resourceInclude',
  'sysrootInclude',
  'commandStart',
  'posixLibrary',
] as const;

/**
 * The memo's toolchain when it was made for this fingerprint and the files it built are still
 * what they were (the memo lists and stats them after the sources, as writeMemo writes them).
 */
function readMemo(path: string, fingerprint: Fingerprint): Toolchain | undefined {
  let values: Map<string, string>;
  try {
    values = parseShellAssignments(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  const value = (name: string) => values.get(`roam_${name}`);
  if (
    value('memo') !== String(memoFormat) ||
    value('env') !== fingerprint.env ||
    value('found') !== fingerprint.found
  ) {
    return undefined;
  }
  const fields = memoFields.map((field) => value(field));
  let runtimeObjects: string[];
  try {
    runtimeObjects = parseShellWords(value('runtimeObjects') ?? '');
  } catch {
    return undefined;
  }
  if (fields.some((field) => !field) || runtimeObjects.length !== runtimeSources.length) return undefined;
  const [clang, clangxx, ar, cxxInclude, resourceInclude, sysrootInclude, commandStart, posixLibrary] =
    fields as string[];
  const toolchain: Toolchain = {
    clang: clang!,
    clangxx: clangxx!,
    ar: ar!,
    cxxInclude: cxxInclude!,
    resourceInclude: resourceInclude!,
    sysrootInclude: sysrootInclude!,
    runtimeObjects,
    commandStart: commandStart!,
    posixLibrary: posixLibrary!,
  };
  const memoFiles = memoFingerprint(fingerprint, toolchain);
  return value('files') === memoFiles.files && value('stat') === memoFiles.stat ? toolchain : undefined;
}

/** The memo's file list and their stat: the sources' (taken before a build read them), then the built files'. */
function memoFingerprint(fingerprint: Fingerprint, toolchain: Toolchain): { files: string; stat: string } {
  const built = [...toolchain.runtimeObjects, toolchain.commandStart, toolchain.posixLibrary];
  return {
    files: shellWords([...fingerprint.files, ...built]),
    stat: [fingerprint.stat, statFingerprint(built)].filter((part) => part !== '').join('\n'),
  };
}

/**
 * Writes the memo: the fingerprint (with the files the build made, so that a memo naming an
 * object that went away is not used), the toolchain and `extra`'s argument lists, as shell
 * assignments.
 */
function writeMemo(path: string, fingerprint: Fingerprint, toolchain: Toolchain, extra: MemoArguments): Toolchain {
  const { files, stat } = memoFingerprint(fingerprint, toolchain);
  const assignments: [string, string][] = [
    ['memo', String(memoFormat)],
    ['root', packageRoot],
    ['env', fingerprint.env],
    ['found', fingerprint.found],
    // The sources' stat is the one taken before the build read them: a change during the build shows next time.
    ['files', files],
    ['stat', stat],
    ...memoFields.map((field): [string, string] => [field, toolchain[field]]),
    ['runtimeObjects', shellWords(toolchain.runtimeObjects)],
    ...Object.entries(extra(toolchain)).map(([name, words]): [string, string] => [name, shellWords(words)]),
  ];
  const text = [
    `# roam cc's toolchain for ${packageRoot}, written by src/build/toolchain.ts and read by`,
    "# bin/roam-cc (which sources it): valid while `stat -L -c '%s %.9Y' $roam_files` prints $roam_stat.",
    ...assignments.map(([name, value]) => `roam_${name}=${shellQuote(value)}`),
    '',
  ].join('\n');
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, text);
  renameSync(temp, path);
  return toolchain;
}

/** One shell word that stands for `text` exactly: as it is when that is safe, else single-quoted (a quote as '\''). */
export function shellQuote(text: string): string {
  return /^[\w/.,:=+%@-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

/** Words a shell's `eval` splits back into `words`. */
export function shellWords(words: string[]): string {
  return words.map(shellQuote).join(' ');
}

/**
 * The inverse of shellWords: the words of text written as shellQuote writes them (plain
 * characters, single-quoted runs, backslash escapes; blanks between words). Throws on anything else.
 */
export function parseShellWords(text: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new ToolchainError('unterminated quote in a shell word list');
      word = (word ?? '') + text.slice(i + 1, end);
      i = end;
    } else if (char === '\\' && i + 1 < text.length) {
      word = (word ?? '') + text[++i];
    } else if (char === ' ' || char === '\t' || char === '\n') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (/[\w/.,:=+%@-]/.test(char)) {
      word = (word ?? '') + char;
    } else {
      throw new ToolchainError(`unexpected '${char}' in a shell word list`);
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/**
 * The assignments of a memo as writeMemo writes it: `# comment` lines and `name=WORD` lines, each
 * WORD one shell word (single-quoted runs and backslash escapes; a quoted run may span lines).
 */
function parseShellAssignments(text: string): Map<string, string> {
  const values = new Map<string, string>();
  let i = 0;
  while (i < text.length) {
    if (text[i] === '\n') {
      i++;
    } else if (text[i] === '#') {
      const end = text.indexOf('\n', i);
      i = end < 0 ? text.length : end + 1;
    } else {
      const name = /^[A-Za-z_][A-Za-z0-9_]*=/.exec(text.slice(i, i + 64));
      if (!name) throw new ToolchainError('a toolchain memo line is not an assignment');
      i += name[0].length;
      let end = i;
      while (end < text.length && text[end] !== '\n') {
        if (text[end] === "'") {
          end = text.indexOf("'", end + 1);
          if (end < 0) throw new ToolchainError('unterminated quote in a toolchain memo');
        } else if (text[end] === '\\') {
          end++;
        }
        end++;
      }
      const words = parseShellWords(text.slice(i, end));
      if (words.length !== 1) throw new ToolchainError('a toolchain memo value is not one shell word');
      values.set(name[0].slice(0, -1), words[0]!);
      i = end;
    }
  }
  return values;
}

/** node:crypto, loaded only when something must be built (a roam cc call that finds its memo never hashes). */
const sha256 = () =>
  (createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto')).createHash('sha256');

/**
 * An executable named on PATH (or given as a path) as a shell's `command -v` names it, without
 * spawning a shell: configure runs roam cc a thousand times.
 */
function findExecutable(name: string): string | undefined {
  const candidates = name.includes('/')
    ? [name]
    : (process.env.PATH ?? '').split(':').map((dir) => `${dir || '.'}/${name}`);
  return candidates.find((candidate) => {
    try {
      accessSync(candidate, constants.X_OK);
      return statSync(candidate).isFile();
    } catch {
      return false; // not there
    }
  });
}

/** Compiles one runtime source once per content hash into the cache. */
function buildRuntimeObject(toolchain: Toolchain, source: string): string {
  const path = join(packageRoot, 'runtime', 'src', source);
  const digest = sha256().update(readFileSync(path)).update(toolchain.clang).digest('hex').slice(0, 16);
  const dir = cacheDir('runtime');
  const object = join(dir, `${source}.${digest}.o`);
  if (existsSync(object)) return object;
  mkdirSync(dir, { recursive: true });
  const temp = `${object}.${process.pid}.tmp`;
  execFileSync(toolchain.clang, [...compileFlags(toolchain), '-O2', '-c', path, '-o', temp], { stdio: 'inherit' });
  renameSync(temp, object);
  return object;
}

/**
 * Every file under dir (recursively; withDirs: and every directory), sorted, as paths relative to
 * dir. A walk by hand: Node 20's recursive readdirSync takes 4-18 ms here for 40 files, this about 0.6 ms.
 */
function filesUnder(dir: string, prefix = '', withDirs = false): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (withDirs) files.push(path);
      files.push(...filesUnder(join(dir, entry.name), path, withDirs));
    } else if (entry.isFile()) {
      files.push(path);
    }
  }
  return prefix ? files : files.sort();
}

/**
 * Compiles runtime/posix/*.c into libroam-posix.a in the cache, once per content hash of
 * runtime/posix and runtime/include (the layer's headers) and the clang binary.
 */
function buildPosixLibrary(toolchain: Toolchain): string {
  const posix = join(packageRoot, 'runtime', 'posix');
  const include = join(packageRoot, 'runtime', 'include');
  const hash = sha256().update(toolchain.clang);
  for (const [dir, label] of [
    [posix, 'posix'],
    [include, 'include'],
  ] as const) {
    for (const file of filesUnder(dir)) hash.update(`${label}/${file}\0`).update(readFileSync(join(dir, file)));
  }
  const dir = cacheDir('runtime');
  const archive = join(dir, `libroam-posix.${hash.digest('hex').slice(0, 16)}.a`);
  if (existsSync(archive)) return archive;
  mkdirSync(dir, { recursive: true });
  const work = `${archive}.${process.pid}.tmp`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  try {
    const objects = readdirSync(posix)
      .filter((name) => name.endsWith('.c'))
      .sort()
      .map((source) => {
        const object = join(work, source.replace(/\.c$/, '.o'));
        execFileSync(toolchain.clang, [...compileFlags(toolchain), '-O2', '-c', join(posix, source), '-o', object], {
          stdio: 'inherit',
        });
        return object;
      });
    const temp = join(work, 'libroam-posix.a');
    execFileSync(toolchain.ar, ['rcs', temp, ...objects], { stdio: 'inherit' });
    renameSync(temp, archive);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return archive;
}

/** Target, include order and emulation defines for every compile. */
export function compileFlags(toolchain: Toolchain): string[] {
  return [
    '--target=wasm32-wasi',
    '-Qunused-arguments', // link-only and assembler steps see the compile flags too
    // Debian's clang also searches /usr/include after the WASI sysroot, leaking glibc headers.
    '-nostdinc',
    '-isystem',
    join(packageRoot, 'runtime', 'include'),
    '-isystem',
    toolchain.resourceInclude,
    '-isystem',
    toolchain.sysrootInclude,
    '-D_WASI_EMULATED_SIGNAL',
    '-D_WASI_EMULATED_PROCESS_CLOCKS',
    '-D_WASI_EMULATED_GETPID',
    '-D_WASI_EMULATED_MMAN',
    // Programs take their POSIX paths on __unix__ (zstd, lz4); the layer (runtime/posix) backs them.
    '-D__unix__=1',
    '-D__unix=1',
    // A gcc-compatible driver: clang 14 warns where gcc does not (a variable only incremented),
    // which stops packages built with -Werror (indent). The warning stays; it is not an error.
    '-Wno-error=unused-but-set-variable',
  ];
}

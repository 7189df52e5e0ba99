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
 * The toolchain, with the runtime objects and the POSIX layer built (once, into the cache).
 * configure runs roam cc a thousand times, so a call reuses what an earlier one found (a memo per
 * checkout and clang in the cache) while the files it was made from keep their sizes and mtimes:
 * a few stat calls instead of hashing the layer's sources and asking clang. On any change, or a
 * memo that does not read back whole, it is worked out again (content hashes name the outputs).
 */
export function findToolchain(): Toolchain {
  if (cached) return cached;
  const clang = process.env.ROAM_CLANG ?? 'clang';
  const binary = findExecutable(clang);
  if (!binary) {
    throw new ToolchainError(`cannot find '${clang}': install the toolchain with scripts/setup (or set ROAM_CLANG)`);
  }
  const sysrootInclude = process.env.ROAM_WASI_INCLUDE ?? '/usr/include/wasm32-wasi';
  const memo = cacheDir('runtime', `toolchain.${fnv1a(`${packageRoot}\0${clang}`)}`);
  const fingerprint = fingerprintOf(binary, sysrootInclude);
  cached = readMemo(memo, fingerprint) ?? writeMemo(memo, fingerprint, buildToolchain(clang, binary, sysrootInclude));
  return cached;
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

/** The toolchain's fields in the memo, one `key<TAB>value` line each (runtimeObjects: one line per object). */
const memoKeys = [
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
 * What the toolchain is made from, as `path size mtime` lines: the clang binary, wasi-libc's
 * headers, roam cc's runtime sources, the POSIX layer and its headers, and the variables that
 * choose tools. Reading it costs stat calls only.
 */
function fingerprintOf(binary: string, sysrootInclude: string): string {
  const runtime = join(packageRoot, 'runtime');
  const files = [
    binary,
    join(sysrootInclude, 'stdio.h'),
    ...[...runtimeSources, 'crt1-command.c'].map((source) => join(runtime, 'src', source)),
    ...[join(runtime, 'posix'), join(runtime, 'include')].flatMap((dir) =>
      filesUnder(dir).map((file) => join(dir, file)),
    ),
  ];
  const lines = files.map((file) => {
    const stat = statSync(file, { throwIfNoEntry: false });
    return `${file} ${stat?.size ?? '-'} ${stat?.mtimeMs ?? '-'}`;
  });
  for (const name of ['ROAM_CLANGXX', 'ROAM_AR']) lines.push(`${name}=${process.env[name] ?? ''}`);
  return lines.join('\n');
}

/** The memo's toolchain when its fingerprint is this one and every file it names is there. */
function readMemo(path: string, fingerprint: string): Toolchain | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const split = text.indexOf('\n\n');
  if (split < 0 || text.slice(0, split) !== fingerprint) return undefined;
  const fields = new Map<string, string>();
  const runtimeObjects: string[] = [];
  for (const line of text.slice(split + 2).split('\n')) {
    if (line === '') continue;
    const tab = line.indexOf('\t');
    const [key, value] = [line.slice(0, tab), line.slice(tab + 1)];
    if (tab <= 0 || value === '') return undefined;
    if (key === 'runtimeObject') runtimeObjects.push(value);
    else fields.set(key, value);
  }
  if (runtimeObjects.length !== runtimeSources.length || !memoKeys.every((key) => fields.has(key))) return undefined;
  const field = (key: (typeof memoKeys)[number]) => fields.get(key)!;
  const toolchain: Toolchain = {
    clang: field('clang'),
    clangxx: field('clangxx'),
    ar: field('ar'),
    cxxInclude: field('cxxInclude'),
    resourceInclude: field('resourceInclude'),
    sysrootInclude: field('sysrootInclude'),
    runtimeObjects,
    commandStart: field('commandStart'),
    posixLibrary: field('posixLibrary'),
  };
  const built = [...runtimeObjects, toolchain.commandStart, toolchain.posixLibrary];
  return built.every((file) => existsSync(file)) ? toolchain : undefined;
}

function writeMemo(path: string, fingerprint: string, toolchain: Toolchain): Toolchain {
  const lines = [
    ...memoKeys.map((key) => `${key}\t${toolchain[key]}`),
    ...toolchain.runtimeObjects.map((object) => `runtimeObject\t${object}`),
  ];
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, `${fingerprint}\n\n${lines.join('\n')}\n`);
  renameSync(temp, path);
  return toolchain;
}

/** FNV-1a (32 bits) as hex: a short stable name for a memo, without loading node:crypto. */
function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash.toString(16).padStart(8, '0');
}

/** node:crypto, loaded only when something must be built (a roam cc call that finds its memo never hashes). */
const sha256 = () =>
  (createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto')).createHash('sha256');

/**
 * The real path of an executable named on PATH (or given as a path), without spawning a shell:
 * configure runs roam cc a thousand times.
 */
function findExecutable(name: string): string | undefined {
  const candidates = name.includes('/')
    ? [name]
    : (process.env.PATH ?? '').split(':').map((dir) => join(dir || '.', name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return realpathSync(candidate);
    } catch {
      // not there
    }
  }
  return undefined;
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
 * Every file under dir (recursively), sorted, as paths relative to dir. A walk by hand: Node 20's
 * recursive readdirSync takes 4-18 ms here for 40 files, this about 0.6 ms.
 */
function filesUnder(dir: string, prefix = ''): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) files.push(...filesUnder(join(dir, entry.name), path));
    else if (entry.isFile()) files.push(path);
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

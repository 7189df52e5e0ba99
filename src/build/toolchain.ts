import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
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

export function findToolchain(): Toolchain {
  if (cached) return cached;
  const clang = process.env.ROAM_CLANG ?? 'clang';
  const binary = findExecutable(clang);
  if (!binary) {
    throw new ToolchainError(`cannot find '${clang}': install the toolchain with scripts/setup (or set ROAM_CLANG)`);
  }
  const resourceDir = clangResourceDir(clang, binary);
  const sysrootInclude = process.env.ROAM_WASI_INCLUDE ?? '/usr/include/wasm32-wasi';
  if (!existsSync(join(sysrootInclude, 'stdio.h'))) {
    throw new ToolchainError(`wasi-libc headers not found in ${sysrootInclude}: run scripts/setup`);
  }
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
  cached = toolchain;
  return toolchain;
}

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

/** clang's resource directory, remembered per clang binary (asking clang costs a process). */
function clangResourceDir(clang: string, binary: string): string {
  const memo = cacheDir(
    'runtime',
    `resource-dir.${createHash('sha256')
      .update(binary)
      .update(String(statSync(binary).mtimeMs))
      .digest('hex')
      .slice(0, 16)}`,
  );
  if (existsSync(memo)) return readFileSync(memo, 'utf8');
  const resourceDir = execFileSync(clang, ['-print-resource-dir'], { encoding: 'utf8' }).trim();
  mkdirSync(dirname(memo), { recursive: true });
  writeFileSync(memo, resourceDir);
  return resourceDir;
}

/** Compiles one runtime source once per content hash into the cache. */
function buildRuntimeObject(toolchain: Toolchain, source: string): string {
  const path = join(packageRoot, 'runtime', 'src', source);
  const digest = createHash('sha256').update(readFileSync(path)).update(toolchain.clang).digest('hex').slice(0, 16);
  const dir = cacheDir('runtime');
  const object = join(dir, `${source}.${digest}.o`);
  if (existsSync(object)) return object;
  mkdirSync(dir, { recursive: true });
  const temp = `${object}.${process.pid}.tmp`;
  execFileSync(toolchain.clang, [...compileFlags(toolchain), '-O2', '-c', path, '-o', temp], { stdio: 'inherit' });
  renameSync(temp, object);
  return object;
}

/** Every file under dir (recursively), sorted, as paths relative to dir. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => statSync(join(dir, file)).isFile())
    .sort();
}

/**
 * Compiles runtime/posix/*.c into libroam-posix.a in the cache, once per content hash of
 * runtime/posix and runtime/include (the layer's headers) and the clang binary.
 */
function buildPosixLibrary(toolchain: Toolchain): string {
  const posix = join(packageRoot, 'runtime', 'posix');
  const include = join(packageRoot, 'runtime', 'include');
  const hash = createHash('sha256').update(toolchain.clang);
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

import { spawnSync } from 'node:child_process';
import { RoamError } from '../platform/errors.js';
import { compileFlags, findToolchain } from './toolchain.js';

/** 8 MiB, Linux's default: real programs (jq's parser, SQLite's planner) recurse deeply. */
export const defaultStackSize = 8 * 1024 * 1024;

const noLinkFlags = new Set(['-c', '-S', '-E', '-M', '-MM', '-fsyntax-only']);
const queryFlags = new Set([
  '--version',
  '-dumpversion',
  '-dumpmachine',
  '-print-search-dirs',
  '-print-libgcc-file-name',
]);
/** Flags that make sense for native builds but not for wasm32-wasi (no threads, no shared objects). */
const droppedFlags = new Set(['-pthread', '-pthreads', '-rdynamic', '-fPIC', '-fpic', '-fPIE', '-fpie', '-pie']);
const emulationLibraries = [
  '-lwasi-emulated-signal',
  '-lwasi-emulated-process-clocks',
  '-lwasi-emulated-getpid',
  '-lwasi-emulated-mman',
];

/** A `roam cc` command line that cannot work for wasm32-wasi. */
export class CcUsageError extends RoamError {
  readonly code = 'ROAM_CC_USAGE';
}

/**
 * Translates a gcc-style command line into a clang command line for wasm32-wasi.
 * Works for single commands and for autoconf/make builds (`CC="roam cc"`).
 */
export function clangArguments(args: string[]): string[] {
  const toolchain = findToolchain();
  const kept = args.filter((arg) => !droppedFlags.has(arg));
  if (kept.includes('-shared')) throw new CcUsageError('roam cc: wasm32-wasi has no shared libraries (-shared)');
  if (kept.some((arg) => queryFlags.has(arg) || arg.startsWith('-print-'))) return ['--target=wasm32-wasi', ...kept];

  const compile = [
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
    ...kept,
    ...toolchain.runtimeObjects,
    '-Wl,--stack-first', // an overflow runs below address 0 and traps instead of corrupting data
    ...(userSetStack ? [] : [`-Wl,-z,stack-size=${defaultStackSize}`]),
    '-Wl,--export-table', // invoke_* wrappers call through the table
    toolchain.posixLibrary,
    ...emulationLibraries,
  ];
}

/** Runs clang for `roam cc ARGS`; returns its exit status. */
export function runCc(args: string[]): number {
  const toolchain = findToolchain();
  const result = spawnSync(toolchain.clang, clangArguments(args), { stdio: 'inherit' });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/** Repository root (tests run from dist/test/...). */
export const repoRoot = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
export const roamBin = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
export const fixtures = join(repoRoot, 'test', 'fixtures');

export interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the roam CLI as a user would; stdin is `input` through a pipe, or the file `stdinFile`. */
export function roam(
  args: string[],
  options: { input?: string | Buffer; stdinFile?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Result {
  const stdinFd = options.stdinFile ? openSync(options.stdinFile, 'r') : undefined;
  try {
    const result = spawnSync(process.execPath, [roamBin, ...args], {
      input: options.input,
      stdio: [stdinFd ?? 'pipe', 'pipe', 'pipe'],
      cwd: options.cwd,
      env: options.env,
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });
    if (result.error) throw result.error;
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  } finally {
    if (stdinFd !== undefined) closeSync(stdinFd);
  }
}

/** Runs the roam CLI with stdin fed over time from `chunks` (a real pipe, not a file). */
export function roamWithPipe(args: string[], chunks: string[], gapMs: number): Promise<Result> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [roamBin, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolvePromise({ status, stdout, stderr }));
    let i = 0;
    const feed = () => {
      if (i < chunks.length) {
        child.stdin.write(chunks[i++]);
        setTimeout(feed, gapMs);
      } else child.stdin.end();
    };
    feed();
  });
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'roam-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Builds a C program natively (cc -O2) into OUT/NAME-native: the reference a migrated run must match. */
export function buildNative(source: string, out: string): string {
  const native = join(out, `${basename(source, '.c')}-native`);
  const cc = spawnSync('cc', ['-O2', source, '-o', native], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`cc ${source} failed:\n${cc.stderr}`);
  return native;
}

/** Builds test/fixtures/NAME.c into OUT/NAME.wasm (plain) and OUT/NAME.roam.wasm (migratable). */
export function buildFixture(name: string, out: string): { plain: string; roam: string } {
  mkdirSync(out, { recursive: true });
  const plain = join(out, `${name}.wasm`);
  const migratable = join(out, `${name}.roam.wasm`);
  const cc = roam(['cc', '-O2', join(fixtures, `${name}.c`), '-o', plain]);
  if (cc.status !== 0) throw new Error(`roam cc ${name}.c failed:\n${cc.stderr}`);
  const built = roam(['build', plain, '-o', migratable]);
  if (built.status !== 0) throw new Error(`roam build ${name}.wasm failed:\n${built.stderr}`);
  return { plain, roam: migratable };
}

export interface Background {
  /** Resolves when the process exits. */
  done: Promise<Result>;
  /** What it printed so far. */
  stdout(): string;
  stderr(): string;
}

/** Starts the roam CLI in the background (e.g. `run --name`), collecting its output. */
export function roamInBackground(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Background {
  const child = spawn(process.execPath, [roamBin, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: options.cwd,
    env: options.env,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Result>((resolvePromise, reject) => {
    child.on('error', reject);
    child.on('close', (status) => resolvePromise({ status, stdout, stderr }));
  });
  return { done, stdout: () => stdout, stderr: () => stderr };
}

/** Waits until `roam checkpoint NAME` can reach the named container. */
export async function waitForContainer(name: string, runtimeDir: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(join(runtimeDir, `${name}.sock`))) {
    if (Date.now() > deadline) throw new Error(`container ${name} did not start`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Where every test must run (CI sets CI=true; ROAM_REQUIRE_ALL=1 asks for the same by hand). */
export const everyTestMustRun = process.env.CI === 'true' || process.env.ROAM_REQUIRE_ALL === '1';
const reportedMissing = new Set<string>();

/**
 * The `skip` option of a test that needs something a machine may lack: `missing` says what (false
 * when it is there). On a developer's machine the test is skipped with that reason; where every
 * test must run, a test named after what is missing fails instead, so that a green CI run has run
 * everything.
 */
export function skipIfMissing(missing: string | false): string | false {
  if (missing && everyTestMustRun && !reportedMissing.has(missing)) {
    reportedMissing.add(missing);
    test(`this machine can run every test: ${missing}`, () => {
      assert.fail(`${missing}: CI must run every test (scripts/setup installs what they need)`);
    });
  }
  return missing;
}

/** A xorshift32 generator of numbers below `below`: the same "random" streams on every run. */
export function seededRandom(seed: number): (below: number) => number {
  let x = seed >>> 0 || 1;
  return (below: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % below;
  };
}

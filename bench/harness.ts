import { spawn, spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Shared plumbing for the benchmarks: the roam CLI, timing, medians, tables. */
export const repoRoot = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
export const roamBin = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

export function roamSync(args: string[], options: { cwd?: string; input?: string } = {}) {
  const result = spawnSync(process.execPath, [roamBin, ...args], { encoding: 'utf8', maxBuffer: 1 << 30, ...options });
  if (result.status !== 0)
    throw new Error(`roam ${args.join(' ')} failed (${result.status}): ${result.stderr.slice(-2000)}`);
  return result;
}

/** Wall time of one command, in ms. */
export function timeCommand(
  command: string,
  args: string[],
  options: { cwd?: string; stdinFile?: string } = {},
): number {
  const started = performance.now();
  const result = spawnSync(command, args, {
    cwd: options.cwd,
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    shell: false,
  });
  const elapsed = performance.now() - started;
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr.slice(-2000)}`);
  return elapsed;
}

/** Starts a command and resolves with its stderr once a line matches `pattern`; then kills it. */
export function stderrUntil(command: string, args: string[], pattern: RegExp): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      const match = stderr.match(pattern);
      if (match) {
        child.kill('SIGTERM'); // roam forwards it to an emulated child
        resolvePromise(match[0]);
      }
    });
    child.on('exit', (code) => {
      if (!pattern.test(stderr))
        reject(new Error(`${command} exited ${code} before ${pattern}: ${stderr.slice(-1000)}`));
    });
  });
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function geomean(values: number[]): number {
  return Math.exp(values.reduce((s, v) => s + Math.log(v), 0) / values.length);
}

export function table(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export const ms = (value: number) => value.toFixed(value < 10 ? 2 : 0);
export const mib = (bytes: number) => (bytes / 1048576).toFixed(1);

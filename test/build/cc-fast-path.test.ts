/**
 * bin/roam-cc and bin/roam-c++ run clang themselves from the toolchain memo (the fast path) and
 * start Node only when they must: the two paths give clang the same arguments, so builds come out
 * the same, and a memo that no longer matches what it was made from is not used.
 *
 * The test runs against a cache of its own (ROAM_CACHE) holding links to the runtime objects
 * already built, a `clang` and `clang++` first on PATH that exec the real ones (so the test owns
 * a file of the memo's fingerprint), and a `node` first on PATH that logs each start (so the test
 * sees which path a call took).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { cacheDir, packageRoot } from '../../src/platform/paths.js';
import { fixtures, repoRoot, roamBin, tempDir } from '../helpers.js';

const { dir, cleanup } = tempDir();
after(cleanup);

const bin = join(dir, 'bin');
const cache = join(dir, 'cache');
const work = join(dir, 'work');
const nodeLog = join(dir, 'node.log');
const memo = join(cache, 'runtime', 'memo', packageRoot, 'toolchain.sh');
const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH}`, ROAM_CACHE: cache };
delete env.ROAM_CLANG;
delete env.ROAM_CLANGXX;
delete env.ROAM_AR;
delete env.ROAM_WASI_INCLUDE;

function script(path: string, text: string): void {
  writeFileSync(path, `#!/bin/sh\n${text}\n`);
  chmodSync(path, 0o755);
}

before(() => {
  mkdirSync(bin);
  mkdirSync(work);
  const which = (name: string) => spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
  const clang = which('clang');
  script(join(bin, 'clang'), `exec ${clang} "$@"`);
  script(join(bin, 'clang++'), `exec ${clang}++ "$@"`);
  script(join(bin, 'llvm-ar'), `exec ${which('llvm-ar')} "$@"`);
  script(join(bin, 'node'), `echo "$*" >>${nodeLog}\nexec ${process.execPath} "$@"`);
  // The runtime objects are named by content and clang's name ('clang' here too): reuse the built
  // ones (a Node call with the usual cache builds them if they are not there yet).
  const built = spawnSync(process.execPath, [roamBin, 'cc', '-c', join(fixtures, 'hello.c'), '-o', join(work, 'x.o')]);
  assert.equal(built.status, 0, String(built.stderr));
  mkdirSync(join(cache, 'runtime'), { recursive: true });
  for (const name of readdirSync(cacheDir('runtime'))) {
    if (/\.(o|a)$/.test(name)) symlinkSync(join(cacheDir('runtime'), name), join(cache, 'runtime', name));
  }
  copyFileSync(join(fixtures, 'hello.c'), join(work, 'hello.c'));
  copyFileSync(join(fixtures, 'hello.cc'), join(work, 'hello.cc'));
  writeFileSync(join(work, 'conftest.c'), 'int main(void) { return 0; }\n');
  writeFileSync(join(work, 'broken.c'), 'int main(void) { return undeclared; }\n');
});

interface Call {
  status: number | null;
  /** stdout and stderr, with clang's random temporary file names made fixed. */
  output: string;
  /** Whether the call started roam's CLI (Node). */
  node: boolean;
}

const temporaries = /-[0-9a-f]{6}\.(o|s|bc|i|ii|wasm)\b/g;

function call(command: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Call {
  const logged = existsSync(nodeLog) ? readFileSync(nodeLog, 'utf8').length : 0;
  const result = spawnSync(command, args, { cwd: work, env: { ...env, ...extraEnv }, encoding: 'utf8' });
  if (result.error) throw result.error;
  // Roam's CLI, not any Node program: clang runs wasm-opt (a Node script) when it is on PATH.
  const started = existsSync(nodeLog) ? readFileSync(nodeLog, 'utf8').slice(logged) : '';
  return {
    status: result.status,
    output: (result.stdout + result.stderr).replace(temporaries, '-XXXXXX.$1'),
    node: started.includes(join('dist', 'src', 'cli', 'main.js')),
  };
}

/** `bin/roam-cc ARGS` (or roam-c++), and `roam cc ARGS` through Node. */
const driverScript = (driver: 'cc' | 'c++') => join(repoRoot, 'bin', `roam-${driver}`);
const fast = (driver: 'cc' | 'c++', args: string[], extraEnv?: NodeJS.ProcessEnv) =>
  call(driverScript(driver), args, extraEnv);
const viaNode = (driver: 'cc' | 'c++', args: string[]) => call(process.execPath, [roamBin, driver, ...args]);

/** Makes sure the memo is there and valid (a call with no memo goes to Node, which writes it). */
function primeMemo(): void {
  fast('cc', ['-c', 'conftest.c', '-o', 'prime.o']);
  assert.equal(fast('cc', ['-c', 'conftest.c', '-o', 'prime.o']).node, false, 'a call with a valid memo starts Node');
}

const sameCommandLines: ['cc' | 'c++', string[]][] = [
  ['cc', ['-c', 'hello.c', '-o', 'hello.o']],
  ['cc', ['-E', 'hello.c']],
  ['cc', ['-O2', '-fPIC', '-pthread', '-DX=1', '-c', 'hello.c', '-o', 'hello.o']],
  ['cc', ['-o', 'conftest', '-O2', 'conftest.c']],
  ['cc', ['hello.o', '-o', 'hello', '-lm']],
  ['cc', ['-O2', '-Wl,-z,stack-size=16777216', 'hello.c', '-o', 'hello']],
  ['cc', ['-S', 'hello.c', '-o', '-']],
  ['cc', ['-MM', 'hello.c']],
  ['cc', ['-v', '-c', 'hello.c']],
  ['c++', ['-O2', '-std=c++17', '-c', 'hello.cc', '-o', 'hello-cc.o']],
  ['c++', ['-O2', 'hello.cc', '-o', 'hello-cc']],
];

test('the fast path gives clang the arguments Node gives it (-### of compiles, links, probes)', () => {
  primeMemo();
  for (const [driver, args] of sameCommandLines) {
    const withScript = fast(driver, ['-###', ...args]);
    const withNode = viaNode(driver, ['-###', ...args]);
    assert.equal(withScript.node, false, `roam-${driver} ${args.join(' ')} started Node`);
    assert.equal(withScript.status, withNode.status, args.join(' '));
    assert.equal(withScript.output, withNode.output, args.join(' '));
  }
});

test('the fast path builds the same objects and modules, and fails with the same messages', () => {
  primeMemo();
  const outputs = (suffix: string) =>
    [
      ['cc', ['-O2', '-c', 'hello.c', '-o', `hello${suffix}.o`]],
      ['cc', ['-O2', '-fPIC', '-c', 'hello.c', '-o', `pic${suffix}.o`]],
      ['cc', ['-E', 'hello.c', '-o', `hello${suffix}.i`]],
      ['cc', [`hello${suffix}.o`, '-o', `hello${suffix}`, '-lm']],
      ['cc', ['-O2', '-o', `conftest${suffix}`, 'conftest.c']],
      ['cc', ['-O2', '-Wl,-z,stack-size=16777216', '-o', `stack${suffix}`, 'conftest.c']],
      ['c++', ['-O2', '-std=c++17', 'hello.cc', '-o', `hello-cc${suffix}`]],
    ] as const;
  for (const [[driver, args], [, nodeArgs]] of outputs('.fast').map((c, i) => [c, outputs('.node')[i]!] as const)) {
    const withScript = fast(driver, [...args]);
    const withNode = viaNode(driver, [...nodeArgs]);
    assert.equal(withScript.node, false);
    assert.equal(withScript.status, 0, withScript.output);
    assert.equal(withNode.status, 0, withNode.output);
    const output = (list: readonly string[]) => join(work, list[list.indexOf('-o') + 1]!);
    const text = (list: readonly string[]) => readFileSync(output(list)).toString('latin1').replaceAll('.fast', '');
    assert.equal(
      text(args),
      readFileSync(output(nodeArgs)).toString('latin1').replaceAll('.node', ''),
      `${args.join(' ')}: outputs differ`,
    );
  }
  for (const args of [['-c', 'missing.c', '-o', 'missing.o'], ['-c', 'broken.c', '-o', 'broken.o'], []]) {
    const withScript = fast('cc', args);
    const withNode = viaNode('cc', args);
    assert.equal(withScript.node, false);
    assert.notEqual(withScript.status, 0);
    assert.equal(withScript.status, withNode.status);
    assert.equal(withScript.output, withNode.output);
  }
});

test('what only Node does goes to Node: queries, -shared, -L, -nostartfiles', () => {
  primeMemo();
  writeFileSync(join(work, 'add.c'), 'int add(int a, int b) { return a + b; }\n');
  for (const args of [
    ['--version'],
    ['-print-resource-dir'],
    ['-shared', 'add.c', '-o', 'libadd.so'],
    ['conftest.c', '-L.', '-ladd', '-o', 'with-lib'],
    ['-nostartfiles', '-Wl,--no-entry', 'add.c', '-o', 'no-start'],
  ]) {
    const result = fast('cc', args);
    assert.equal(result.node, true, `roam-cc ${args.join(' ')} did not go to Node`);
    assert.equal(result.status, 0, result.output);
  }
});

test('a memo that no longer matches is not used, and the Node call that notices writes a new one', () => {
  primeMemo();
  const compile = (extraEnv?: NodeJS.ProcessEnv) => fast('cc', ['-c', 'conftest.c', '-o', 'stale.o'], extraEnv);
  const staleThenFresh = (what: string, change: () => void, extraEnv?: NodeJS.ProcessEnv) => {
    change();
    const stale = compile(extraEnv);
    assert.equal(stale.node, true, `${what}: the memo was used`);
    assert.equal(stale.status, 0, stale.output);
    assert.equal(compile(extraEnv).node, false, `${what}: no new memo was written`);
  };
  // clang changed (here: its mtime), as an upgrade changes it.
  staleThenFresh('clang changed', () => {
    const later = new Date(Date.now() + 5000);
    utimesSync(join(bin, 'clang'), later, later);
  });
  // A file of the fingerprint with other contents but the same size: its mtime tells.
  staleThenFresh('memo fingerprint differs', () => {
    const text = readFileSync(memo, 'utf8');
    writeFileSync(
      memo,
      text.replace(/^roam_stat='(\d+) /m, (_, size) => `roam_stat='${Number(size) + 1} `),
    );
  });
  // A variable that chooses tools, even set to its default.
  staleThenFresh('ROAM_WASI_INCLUDE set', () => {}, { ROAM_WASI_INCLUDE: '/usr/include/wasm32-wasi' });
  // A runtime object the memo names is gone: Node builds it again.
  staleThenFresh('runtime object removed', () => {
    const start = readdirSync(join(cache, 'runtime')).filter((name) => name.startsWith('crt1-command.c.'));
    for (const name of start) rmSync(join(cache, 'runtime', name));
  });
  staleThenFresh('memo removed', () => rmSync(memo));
  staleThenFresh('memo of another format', () =>
    writeFileSync(memo, readFileSync(memo, 'utf8').replace(/^roam_memo=\d+$/m, 'roam_memo=1')),
  );
});

test('a Node call with a valid memo uses it as it is (no rebuild, no rewrite)', () => {
  primeMemo();
  const written = statSync(memo).mtimeMs;
  const result = viaNode('cc', ['-c', 'conftest.c', '-o', 'node.o']);
  assert.equal(result.status, 0, result.output);
  assert.equal(statSync(memo).mtimeMs, written);
});

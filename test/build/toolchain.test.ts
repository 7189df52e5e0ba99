import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fixtures, repoRoot, roam, skipIfMissing, tempDir } from '../helpers.js';

const { dir, cleanup } = tempDir();
after(cleanup);

const library = 'int add(int a, int b) { return a + b; }\n';
const program = '#include <stdio.h>\nint add(int, int);\nint main(void) { printf("%d\\n", add(2, 3)); return 0; }\n';

test('roam cc -shared makes a static archive of that name, and -L/-l link it', () => {
  const work = join(dir, 'shared');
  mkdirSync(work);
  writeFileSync(join(work, 'add.c'), library);
  writeFileSync(join(work, 'main.c'), program);
  const shared = roam(['cc', '-O2', '-fPIC', '-shared', 'add.c', '-o', 'libadd.so'], { cwd: work });
  assert.equal(shared.status, 0, shared.stderr);
  assert.match(shared.stderr, /no shared libraries: libadd.so is a static archive instead/);
  assert.equal(readFileSync(join(work, 'libadd.so')).subarray(0, 8).toString('latin1'), '!<arch>\n');
  const linked = roam(['cc', 'main.c', '-L.', '-ladd', '-o', 'main'], { cwd: work });
  assert.equal(linked.status, 0, linked.stderr);
  assert.equal(roam(['run', join(work, 'main')]).stdout, '5\n');
});

test('roam build takes a WebAssembly module whatever its name (make names programs `prog`)', () => {
  const work = join(dir, 'names');
  mkdirSync(work);
  writeFileSync(join(work, 'main.c'), program.replace('add(2, 3)', '5'));
  assert.equal(roam(['cc', 'main.c', '-o', 'prog'], { cwd: work }).status, 0);
  const built = roam(['build', 'prog', '-o', 'prog.roam'], { cwd: work });
  assert.equal(built.status, 0, built.stderr);
  assert.equal(roam(['run', join(work, 'prog.roam')]).stdout, '5\n');
});

test('roam c++ builds C++ with the standard library', () => {
  const module = join(dir, 'hello-cxx');
  const built = roam(['c++', '-O2', '-std=c++17', join(fixtures, 'hello.cc'), '-o', module]);
  assert.equal(built.status, 0, built.stderr);
  const run = roam(['run', module, '--', 'b', 'a', 'b']);
  assert.equal(run.stdout, 'a 1\nb 2\nstatic constructors ran\n');
  assert.equal(run.status, 0);
});

const noCmake =
  spawnSync('cmake', ['--version']).status === 0 ? false : 'cmake is not installed (scripts/setup installs it)';

test('CMake with cmake/roam.cmake: a SHARED library is built static, programs link and run', {
  skip: skipIfMissing(noCmake),
}, () => {
  const work = join(dir, 'cmake');
  mkdirSync(work);
  writeFileSync(join(work, 'add.c'), library);
  writeFileSync(join(work, 'main.c'), program);
  copyFileSync(join(fixtures, 'hello.cc'), join(work, 'hello.cc'));
  writeFileSync(
    join(work, 'CMakeLists.txt'),
    [
      'cmake_minimum_required(VERSION 3.13)',
      'project(demo C CXX)',
      'set(CMAKE_CXX_STANDARD 17)',
      'add_library(add SHARED add.c)',
      'add_executable(main main.c)',
      'target_link_libraries(main add)',
      'add_executable(hello hello.cc)',
      '',
    ].join('\n'),
  );
  const toolchain = join(repoRoot, 'cmake', 'roam.cmake');
  const configure = spawnSync('cmake', ['-Wno-dev', `-DCMAKE_TOOLCHAIN_FILE=${toolchain}`, '-B', 'build', '.'], {
    cwd: work,
    encoding: 'utf8',
  });
  assert.equal(configure.status, 0, configure.stderr);
  const make = spawnSync('cmake', ['--build', 'build'], { cwd: work, encoding: 'utf8' });
  assert.equal(make.status, 0, make.stdout + make.stderr);
  assert.equal(roam(['run', join(work, 'build', 'main')]).stdout, '5\n');
  assert.equal(roam(['run', join(work, 'build', 'hello'), '--', 'x']).stdout, 'x 1\nstatic constructors ran\n');
});

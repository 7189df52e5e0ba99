/**
 * roam-exec and binfmt_misc: a module roam cc built runs the way a native program does (the host's
 * files, the caller's working directory, environment, stdio and exit status), which is what a build
 * needs to run a helper it has just compiled (bc's fbc) and configure its test programs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot, roam, skipIfMissing, tempDir } from '../helpers.js';
import { wasmProgramsMissing } from './programs.js';

const helper = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  char cwd[4096];
  printf("argv0=%s args=%d cwd=%s\\n", argv[0], argc - 1, getcwd(cwd, sizeof cwd));
  printf("GREETING=%s ROAM_CWD=%s\\n", getenv("GREETING"), getenv("ROAM_CWD") ? "set" : "unset");
  if (argc > 1 && strcmp(argv[1], "abort") == 0) abort();
  FILE *in = fopen("input.txt", "r"), *out = fopen("sub/generated.h", "w");
  if (!in || !out) return 3;
  char line[256];
  while (fgets(line, sizeof line, in)) fprintf(out, "#define %s", line);
  char stdin_line[256] = "";
  if (fgets(stdin_line, sizeof stdin_line, stdin)) printf("stdin: %s", stdin_line);
  fclose(out);
  return 7;
}
`;

const { dir, cleanup } = tempDir();
const work = join(dir, 'build');
const module = join(work, 'gen');
before(() => {
  mkdirSync(join(work, 'sub'), { recursive: true });
  writeFileSync(join(work, 'gen.c'), helper);
  writeFileSync(join(work, 'input.txt'), 'ONE 1\nTWO 2\n');
  const cc = roam(['cc', '-O2', join(work, 'gen.c'), '-o', module]);
  assert.equal(cc.status, 0, cc.stderr);
});
after(cleanup);

function runIn(command: string, args: string[]) {
  return spawnSync(command, args, {
    cwd: work,
    input: 'from the caller\n',
    encoding: 'utf8',
    env: { ...process.env, GREETING: 'hi' },
  });
}

test('roam-exec runs a module as a native program: cwd, relative files, env, stdin, exit status', () => {
  const run = runIn(join(repoRoot, 'bin', 'roam-exec'), ['./gen', 'x']);
  assert.equal(run.stderr, '');
  assert.equal(run.stdout, `argv0=./gen args=1 cwd=${work}\nGREETING=hi ROAM_CWD=unset\nstdin: from the caller\n`);
  assert.equal(run.status, 7);
  assert.equal(readFileSync(join(work, 'sub', 'generated.h'), 'utf8'), '#define ONE 1\n#define TWO 2\n');
});

test('roam-exec: a trap exits 134 as SIGABRT would, a missing module 127', () => {
  const trapped = runIn(join(repoRoot, 'bin', 'roam-exec'), ['--argv0', 'gen', module, 'abort']);
  assert.equal(trapped.status, 134);
  assert.match(trapped.stdout, /^argv0=gen args=1 /);
  assert.match(trapped.stderr, /^roam-exec: guest trapped: unreachable/);
  const missing = runIn(join(repoRoot, 'bin', 'roam-exec'), ['./nothing']);
  assert.equal(missing.status, 127);
  assert.match(missing.stderr, /nothing: no such file/);
});

test('a module roam cc built runs directly (binfmt_misc), argv[0] as typed', {
  skip: skipIfMissing(wasmProgramsMissing()),
}, () => {
  const run = runIn(module, []);
  assert.equal(run.stderr, '');
  assert.equal(run.stdout, `argv0=${module} args=0 cwd=${work}\nGREETING=hi ROAM_CWD=unset\nstdin: from the caller\n`);
  assert.equal(run.status, 7);
  const relative = spawnSync('sh', ['-c', './gen a b </dev/null'], { cwd: work, encoding: 'utf8' });
  assert.equal(relative.stdout, `argv0=./gen args=2 cwd=${work}\nGREETING=(null) ROAM_CWD=unset\n`);
  assert.equal(relative.status, 7);
});

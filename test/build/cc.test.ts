import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildFixture, fixtures, roam, tempDir } from '../helpers.js';

const { dir, cleanup } = tempDir();
let sjlj: { plain: string; roam: string };
let overflow: { plain: string; roam: string };
before(() => {
  sjlj = buildFixture('sjlj', dir);
  overflow = buildFixture('overflow', dir);
});
after(cleanup);

/** crunch(1000000000) of sjlj.c, computed natively (gcc -O2). */
const crunchResult = '1837508830015789824';
const sjljOutput =
  'first longjmp returned 7\nnested returned 7\nlongjmp(env, 0) made setjmp return 1\njumps=100000 constructors=1\ncrunch=' +
  crunchResult +
  '\n';

test('setjmp/longjmp work in plain and migratable modules', () => {
  for (const module of [sjlj.plain, sjlj.roam]) {
    const run = roam(['run', module]);
    assert.equal(run.stderr, '');
    assert.equal(run.stdout, sjljOutput);
    assert.equal(run.status, 0);
  }
});

test('stack overflow traps instead of corrupting memory', () => {
  for (const module of [overflow.plain, overflow.roam]) {
    for (const [frames, reason] of [
      ['big', /memory access out of bounds/],
      ['small', /call stack exhausted/],
    ] as const) {
      const run = roam(['run', module, '--', frames]);
      assert.equal(run.stdout, 'data below the heap is intact\n');
      assert.notEqual(run.status, 0);
      assert.match(run.stderr, /^roam: guest trapped: [^\n]+\n$/);
      assert.match(run.stderr, reason);
    }
  }
});

test('roam cc passes compiler queries and errors through', () => {
  const version = roam(['cc', '--version']);
  assert.equal(version.status, 0);
  assert.match(version.stdout, /clang version/);
  const bad = roam(['cc', '-c', join(dir, 'missing.c'), '-o', join(dir, 'missing.o')]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /no such file/i);
  const shared = roam(['cc', '-shared', 'x.c']);
  assert.equal(shared.status, 1);
  assert.match(shared.stderr, /-shared: name the library with -o/);
});

test('roam cc works as CC for a separate compile and link', () => {
  const object = join(dir, 'hello.o');
  const module = join(dir, 'hello-linked.wasm');
  const compile = roam(['cc', '-O2', '-DGREETING_DEFAULT=1', '-c', join(fixtures, 'hello.c'), '-o', object]);
  assert.equal(compile.status, 0, compile.stderr);
  const link = roam(['cc', object, '-o', module, '-lm']);
  assert.equal(link.status, 0, link.stderr);
  const run = roam(['run', '--env', 'GREETING=hi', module, '--', 'a', 'b c']);
  assert.equal(run.stdout, 'arg1=a\narg2=b c\nGREETING=hi\n');
  assert.equal(run.status, 0);
});

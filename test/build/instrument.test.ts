import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildFixture, roam, tempDir } from '../helpers.js';

const { dir, cleanup } = tempDir();
let hello: { plain: string; roam: string };
before(() => {
  hello = buildFixture('hello', dir);
});
after(cleanup);

test('roam build embeds a manifest and writes it with the digest beside the module', async () => {
  const bytes = readFileSync(hello.roam);
  const module = await WebAssembly.compile(bytes);
  const [section] = WebAssembly.Module.customSections(module, 'roam.manifest');
  assert.ok(section, 'manifest section present');
  const embedded = JSON.parse(Buffer.from(section).toString());
  const sidecar = JSON.parse(readFileSync(`${hello.roam}.manifest.json`, 'utf8'));
  assert.equal(sidecar.instrumentationVersion, 1);
  assert.deepEqual({ ...sidecar, digest: undefined }, { ...embedded, digest: undefined });
  assert.match(sidecar.digest, /^[0-9a-f]{64}$/);
  const exports = WebAssembly.Module.exports(module).map((e) => e.name);
  for (const name of ['asyncify_start_unwind', 'asyncify_stop_rewind', 'roam_budget', ...embedded.globalExports]) {
    assert.ok(exports.includes(name), `exports ${name}`);
  }
  // The reserved buffer lies in the bottom half of the stack region (roam cc puts the stack first).
  const instance = new WebAssembly.Instance(module, stubImports(module));
  const stackTop = (instance.exports[embedded.stackPointer] as WebAssembly.Global).value as number;
  assert.equal(stackTop, 8 * 1024 * 1024);
  assert.ok(embedded.asyncifyBuffer.address >= 1024);
  assert.equal(embedded.asyncifyBuffer.bytes, 1024 * 1024);
  assert.ok(embedded.asyncifyBuffer.address + embedded.asyncifyBuffer.bytes <= stackTop / 2);
});

test('instrumented and plain modules behave the same', () => {
  const plain = roam(['run', '--env', 'GREETING=hey', hello.plain, '--', 'x', 'y']);
  const migratable = roam(['run', '--env', 'GREETING=hey', hello.roam, '--', 'x', 'y']);
  assert.equal(plain.stdout, 'arg1=x\narg2=y\nGREETING=hey\n');
  assert.deepEqual(migratable, plain);
  assert.equal(plain.status, 3);
});

test('roam build refuses bad input with one line', () => {
  const junk = join(dir, 'junk.wasm');
  writeFileSync(junk, 'not wasm at all');
  for (const [input, message] of [
    [junk, /not a valid WebAssembly module/],
    [join(dir, 'absent.wasm'), /no such file/],
    [hello.roam, /already instrumented/],
  ] as const) {
    const result = roam(['build', input, '-o', join(dir, 'out.wasm')]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, message);
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
  }
});

function stubImports(module: WebAssembly.Module): WebAssembly.Imports {
  const imports: Record<string, Record<string, () => number>> = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    imports[imp.module] ??= {};
    imports[imp.module]![imp.name] = () => 0;
  }
  return imports;
}

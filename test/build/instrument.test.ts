import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import binaryen from 'binaryen';
import { forEachExpression } from '../../src/build/callgraph.js';
import { instrumentationVersion } from '../../src/build/manifest.js';
import { resumeSuffix } from '../../src/build/resume-clones.js';
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
  assert.equal(sidecar.instrumentationVersion, instrumentationVersion);
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

test('the code that runs cannot rewind: only the twins test for the rewinding state', () => {
  const manifest = JSON.parse(readFileSync(`${hello.roam}.manifest.json`, 'utf8'));
  assert.deepEqual(manifest.resume, {
    start: 'roam_resume:_start',
    table: 'roam_resume:table',
  });
  const module = binaryen.readBinary(readFileSync(hello.roam));
  try {
    // The emitted module keeps function names, not global names: the state is what asyncify_get_state reads.
    const getState = binaryen.getFunctionInfo(module.getFunction(exported(module, 'asyncify_get_state')));
    const stateGlobal = (binaryen.getExpressionInfo(getState.body) as binaryen.GlobalGetInfo).name;
    const rewindingTests = { fast: 0, twins: 0 };
    let twins = 0;
    for (let i = 0; i < module.getNumFunctions(); i++) {
      const info = binaryen.getFunctionInfo(module.getFunctionByIndex(i));
      if (info.module || info.name.startsWith('asyncify_')) continue;
      const twin = info.name.endsWith(resumeSuffix);
      if (twin) twins++;
      forEachExpression(info.body, (ref, id) => {
        if (id !== binaryen.BinaryId) return;
        const { left, right } = binaryen.getExpressionInfo(ref) as binaryen.BinaryInfo;
        const state = binaryen.getExpressionInfo(left) as binaryen.GlobalGetInfo;
        const value = binaryen.getExpressionInfo(right) as binaryen.ConstInfo;
        if (state.id === binaryen.GlobalGetId && state.name === stateGlobal && value.value === 2)
          rewindingTests[twin ? 'twins' : 'fast']++;
      });
    }
    assert.ok(twins > 0, 'the module has twins');
    assert.equal(rewindingTests.fast, 0, 'no fast function tests for rewinding');
    assert.ok(rewindingTests.twins > 0, 'the twins rewind');
  } finally {
    module.dispose();
  }
});

test('a module instrumented by an older roam build is refused with a clear error naming the rebuild', () => {
  const manifest = JSON.parse(readFileSync(`${hello.roam}.manifest.json`, 'utf8'));
  const old = join(dir, 'old.roam.wasm');
  // The plain module with an older build's manifest: the engine must refuse it before running it.
  writeFileSync(
    old,
    Buffer.concat([
      readFileSync(hello.plain),
      customSection('roam.manifest', JSON.stringify({ ...manifest, instrumentationVersion: 1 })),
    ]),
  );
  const result = roam(['run', old]);
  assert.equal(result.status, 1);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, new RegExp(`roam build v1, this roam runs v${instrumentationVersion}: rebuild it`));
  assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
});

function exported(module: binaryen.Module, name: string): string {
  return binaryen.getExportInfo(module.getExport(name)).value;
}

/** A Wasm custom section (id 0): size, name, payload. */
function customSection(name: string, payload: string): Buffer {
  const leb = (n: number) => {
    const bytes: number[] = [];
    do {
      bytes.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0));
      n >>>= 7;
    } while (n > 0);
    return Buffer.from(bytes);
  };
  const body = Buffer.concat([leb(name.length), Buffer.from(name), Buffer.from(payload)]);
  return Buffer.concat([Buffer.from([0]), leb(body.length), body]);
}

function stubImports(module: WebAssembly.Module): WebAssembly.Imports {
  const imports: Record<string, Record<string, () => number>> = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    imports[imp.module] ??= {};
    imports[imp.module]![imp.name] = () => 0;
  }
  return imports;
}

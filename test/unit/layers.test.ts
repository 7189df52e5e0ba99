import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers.js';

/** The layers from the bottom up, as docs/architecture.md's folder table lists them. */
function documentedLayers(): string[] {
  const doc = readFileSync(join(repoRoot, 'docs', 'architecture.md'), 'utf8');
  return [...doc.matchAll(/^\| `([a-z0-9-]+)\/`/gm)].map((m) => m[1]!);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => join(entry.parentPath, entry.name));
}

/** The top folder under src/ that a path lies in. */
const layerOf = (srcDir: string, path: string) => relative(srcDir, path).split('/')[0]!;

test('every import in src/ points down the layer order of docs/architecture.md', () => {
  const srcDir = join(repoRoot, 'src');
  const layers = documentedLayers();
  const folders = readdirSync(srcDir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
  assert.deepEqual(
    folders.filter((f) => !layers.includes(f)),
    [],
    'every folder of src/ has its row in the table',
  );
  const violations: string[] = [];
  for (const file of sourceFiles(srcDir)) {
    const from = layerOf(srcDir, file);
    const text = readFileSync(file, 'utf8');
    for (const [, specifier] of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const to = layerOf(srcDir, resolve(dirname(file), specifier!));
      if (layers.indexOf(to) > layers.indexOf(from)) {
        violations.push(`${relative(repoRoot, file)} (${from}) imports ${specifier} (${to}, a layer above)`);
      }
    }
  }
  assert.deepEqual(violations, [], 'upward imports');
});

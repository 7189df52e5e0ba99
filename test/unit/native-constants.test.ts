import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { nativeConstants } from '../../src/protocol/page-channel.js';
import { repoRoot } from '../helpers.js';

interface Generator {
  headerPath: string;
  renderHeader(constants: typeof nativeConstants): string;
}

test('native/src/page_channel.h is what scripts/gen-native-constants.mjs makes of src/protocol/page-channel.ts', async () => {
  const generator = (await import(
    pathToFileURL(join(repoRoot, 'scripts', 'gen-native-constants.mjs')).href
  )) as Generator;
  assert.equal(
    readFileSync(generator.headerPath, 'utf8'),
    generator.renderHeader(nativeConstants),
    'the checked-in header is out of date: run npm run gen:native-constants',
  );
});

test('postcopy.c takes the page channel constants from the generated header, not from its own #defines', () => {
  const source = readFileSync(join(repoRoot, 'native', 'src', 'postcopy.c'), 'utf8');
  assert.match(source, /#include "page_channel.h"/);
  for (const { name } of nativeConstants) assert.doesNotMatch(source, new RegExp(`#define\\s+${name}\\b`), name);
});

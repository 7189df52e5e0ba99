import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { skipIfMissing, tempDir } from '../helpers.js';
import { haveSuiteTools, runRedisSuite } from './redis-suite.js';

// Redis's own test suite against Redis under Roam: the units of a few minutes here, all of them in
// `npm run test:full` (test/full/redis-suite.test.ts).
const { dir, cleanup } = tempDir();
after(cleanup);
const skip = skipIfMissing(!haveSuiteTools && 'tclsh8.6 or redis-tools is not installed (scripts/setup installs them)');

const units = [
  'unit/type/string',
  'unit/type/incr',
  'unit/keyspace',
  'unit/type/hash',
  'unit/type/list',
  'unit/type/set',
  'unit/expire',
  'unit/multi',
  'unit/pubsub',
  'unit/lazyfree',
];

test(`Redis's own test suite passes against Redis under Roam (${units.length} units)`, {
  skip,
  timeout: 20 * 60_000,
}, async (t) => {
  const result = await runRedisSuite(dir, units, 15 * 60_000);
  t.diagnostic(
    `${result.passed} passed, ${result.failed.length} failed, ${result.skipped} skipped in ${result.seconds.toFixed(0)} s`,
  );
  assert.deepEqual(result.failed, [], result.log);
  assert.equal(result.status, 0, result.log);
  assert.ok(result.passed > 500, `expected the units' 500+ tests to run:\n${result.log}`);
});

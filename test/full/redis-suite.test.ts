import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { haveSuiteTools, runRedisSuite } from '../cluster/redis-suite.js';
import { skipIfMissing, tempDir } from '../helpers.js';

// The full tier (`npm run test:full`, not in `npm test`): every unit of Redis's own test suite
// that runs against an external server, less what needs fork (docs/redis.md).
const { dir, cleanup } = tempDir();
after(cleanup);
const skip = skipIfMissing(!haveSuiteTools && 'tclsh8.6 or redis-tools is not installed (scripts/setup installs them)');

test("Redis's whole test suite passes against Redis under Roam", { skip, timeout: 120 * 60_000 }, async (t) => {
  const result = await runRedisSuite(dir, 'all', 110 * 60_000);
  t.diagnostic(
    `${result.passed} passed, ${result.failed.length} failed, ${result.skipped} skipped in ${result.seconds.toFixed(0)} s`,
  );
  assert.deepEqual(result.failed, [], result.log);
  assert.equal(result.status, 0, result.log);
});

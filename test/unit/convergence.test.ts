import assert from 'node:assert/strict';
import { test } from 'node:test';
import { convergencePolicy, decideAfterRound, type RoundRecord } from '../../src/migrate/convergence.js';

/** Pre-copy's decision after each round, on made-up round histories. */

const MiB = 1 << 20;
const rounds = (...list: [bytes: number, ms: number][]): RoundRecord[] =>
  list.map(([bytes, ms], i) => ({ round: i + 1, bytes, ms }));
const decide = (history: RoundRecord[], dirtyBytes: number, postCopyAllowed = false, maxRounds = 10) =>
  decideAfterRound({ rounds: history, dirtyBytes, maxRounds, postCopyAllowed });

test('a guest that dirties its memory as fast as it is sent: no second full round, the final one at once', () => {
  // 64 MiB to an emulated node in 2 s while the guest writes all of it every second.
  const d = decide(rounds([64 * MiB, 2000]), 64 * MiB);
  assert.equal(d.next, 'stop-copy');
  assert.match(
    d.reason,
    /round 1 sent 64\.0 MiB in 2000 ms, 64\.0 MiB written meanwhile \(100% of it\): not converging, final round now/,
  );
});

test('not converging, where post-copy is allowed and possible: post-copy now', () => {
  const d = decide(rounds([64 * MiB, 250]), 60 * MiB, true);
  assert.equal(d.next, 'post-copy');
  assert.match(d.reason, /not converging, post-copy now/);
});

test('a dirty set that does not shrink meaningfully any more after several rounds: stop', () => {
  // 1 GiB, then 256 MiB, 64, 40 MiB: the last shrank to 62%, the next would be 90% of it.
  const history = rounds([1024 * MiB, 4000], [256 * MiB, 1000], [64 * MiB, 250], [40 * MiB, 160]);
  assert.equal(decide(history, 36 * MiB).next, 'stop-copy');
  assert.equal(decide(history.slice(0, 3), 40 * MiB).next, 'round', '62% of the last round: still shrinking');
});

test('shrinking rounds go on; a dirty set of a few ms of transfer is the final round', () => {
  const history = rounds([256 * MiB, 1000]); // 0.27 MB per ms
  const more = decide(history, 16 * MiB);
  assert.equal(more.next, 'round');
  assert.match(more.reason, /16\.0 MiB written meanwhile \(6% of it\): another round/);
  // 256 KiB at 0.27 MB/ms is about 1 ms: not worth a round of its own.
  const done = decide(history, 256 << 10);
  assert.equal(done.next, 'stop-copy');
  assert.match(done.reason, /converged, final round now/);
  // Whatever the rate, a dirty set this small is the final round (even to a slow node).
  assert.equal(decide(rounds([64 * MiB, 60_000]), convergencePolicy.finalRoundBytes).next, 'stop-copy');
  assert.equal(decide(rounds([64 * MiB, 60_000]), convergencePolicy.finalRoundBytes + 4096).next, 'round');
});

test('converged wins over post-copy: a small final round costs less than running on remote memory', () => {
  assert.equal(decide(rounds([16 * MiB, 100], [4 * MiB, 25]), 32 << 10, true).next, 'stop-copy');
});

test('the round limit stops a converging pre-copy too', () => {
  const history = rounds([256 * MiB, 1000], [64 * MiB, 250], [16 * MiB, 62]);
  assert.equal(decide(history, 4 * MiB, false, 3).next, 'stop-copy');
  assert.match(decide(history, 4 * MiB, false, 3).reason, /3 rounds done \(the limit\)/);
  assert.equal(decide(history, 4 * MiB, false, 4).next, 'round');
});

test('a round with nothing to send (a guest that wrote nothing before) and no history are handled', () => {
  assert.equal(decide(rounds([0, 1]), 0).next, 'stop-copy');
  assert.equal(decide(rounds([0, 1]), 8 * MiB).next, 'stop-copy', 'all of it new, as much as nothing: not converging');
  assert.throws(() => decide([], 0), RangeError);
});

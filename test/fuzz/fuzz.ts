import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describeError, isRoamError } from '../../src/platform/errors.js';

/**
 * Fuzzing with fast-check: each target runs for ROAM_FUZZ_SECONDS (default 30; the slow lane's
 * budget; longer by hand: `ROAM_FUZZ_SECONDS=600 node --test dist/test/fuzz/`), from a seed that a
 * failure prints (ROAM_FUZZ_SEED replays it). The property every parser must hold: whatever the
 * input, it answers or throws a RoamError (a clear error with a stable code), never anything else
 * (a TypeError, a RangeError: a bug) and never hangs.
 */
export const fuzzSeconds = Number(process.env.ROAM_FUZZ_SECONDS ?? 30);
const seed = process.env.ROAM_FUZZ_SEED === undefined ? Date.now() : Number(process.env.ROAM_FUZZ_SEED);

/**
 * Runs `body` on inputs from `input` until the time is up. A non-RoamError thrown fails the test
 * with that error, the input's size and the seed and path that replay it (the input itself can be
 * megabytes: fast-check's report is left out).
 */
export function fuzz<T>(input: fc.Arbitrary<T>, body: (value: T) => void): { runs: number } {
  let runs = 0;
  let failure: string | undefined;
  const property = fc.property(input, (value) => {
    runs++;
    try {
      body(value);
    } catch (error) {
      if (isRoamError(error)) return;
      failure ??= `${describeError(error)}\ninput: ${JSON.stringify(value)?.slice(0, 400)}`;
      throw error;
    }
  });
  const details = fc.check(property, {
    seed,
    numRuns: Number.MAX_SAFE_INTEGER,
    interruptAfterTimeLimit: fuzzSeconds * 1000,
    markInterruptAsFailure: false,
    endOnFailure: true,
  });
  if (details.failed)
    assert.fail(
      `after ${runs} inputs, not a RoamError: ${failure}\nreplay: ROAM_FUZZ_SEED=${details.seed} (path ${details.counterexamplePath})`,
    );
  return { runs };
}

/** Bytes that a mutation of `valid` gives: flipped bytes, cut short, spliced with random bytes. */
export function mutated(valid: Uint8Array): fc.Arbitrary<Uint8Array> {
  const flips = fc.array(fc.tuple(fc.nat(Math.max(valid.length - 1, 0)), fc.integer({ min: 0, max: 255 })), {
    maxLength: 8,
  });
  return fc.oneof(
    flips.map((changes) => {
      const out = Uint8Array.from(valid);
      for (const [at, byte] of changes) out[at] = byte;
      return out;
    }),
    fc.nat(valid.length).map((end) => valid.subarray(0, end)),
    fc
      .tuple(fc.nat(valid.length), fc.uint8Array({ maxLength: 64 }))
      .map(([at, bytes]) => Buffer.concat([valid.subarray(0, at), bytes, valid.subarray(at)])),
  );
}

/** A JSON value where `valid` had one: the value itself with fields replaced, dropped or added. */
export function mutatedJson(valid: Record<string, unknown>): fc.Arbitrary<unknown> {
  const keys = Object.keys(valid);
  return fc.oneof(
    fc.jsonValue(),
    fc.tuple(fc.constantFrom(...keys), fc.jsonValue()).map(([key, value]) => ({ ...valid, [key]: value })),
    fc.constantFrom(...keys).map((key) => {
      const { [key]: _, ...rest } = valid;
      return rest;
    }),
    fc.tuple(fc.string(), fc.jsonValue()).map(([key, value]) => ({ ...valid, [key]: value })),
  );
}

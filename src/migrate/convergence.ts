/**
 * Pre-copy's policy, as data: after each round sent while the guest runs, the tracker finds what
 * the guest wrote meanwhile (the next round), and `decideAfterRound` says whether to send it as
 * another round, to stop the guest for the final round now, or to stop it and let the rest follow
 * in post-copy. A pure function of the rounds so far, so that it is tested on made-up histories.
 *
 * The ratio of the dirty set to the round just sent is the ratio of the guest's write rate to the
 * rate the round was sent at (both were measured over the same time): below 1 the rounds shrink
 * geometrically, near 1 every round resends about the whole working set and the final round will
 * be as big as this one. Then rounds only cost time and bandwidth: stop now.
 */

export interface RoundRecord {
  round: number;
  /** Bytes of pages sent in the round. */
  bytes: number;
  /** How long the round took, from its scan to its acknowledgement. */
  ms: number;
}

export type NextStep = 'round' | 'stop-copy' | 'post-copy';

export interface ConvergenceInput {
  /** The rounds sent while the guest ran, oldest first (at least one). */
  rounds: readonly RoundRecord[];
  /** What the guest wrote since the last round was scanned: the next round, if there is one. */
  dirtyBytes: number;
  /** At most this many rounds while the guest runs. */
  maxRounds: number;
  /** The destination can receive post-copy and the requested mode allows it. */
  postCopyAllowed: boolean;
}

export interface ConvergenceDecision {
  next: NextStep;
  /** One line for the migration's progress output. */
  reason: string;
}

export const convergencePolicy = {
  /** Converged: the final round would take at most this long at the last round's rate... */
  finalRoundMs: 2,
  /** ...or is at most this big whatever the rate. */
  finalRoundBytes: 64 << 10,
  /** Not converging: the dirty set is more than this fraction of the round just sent. */
  maxShrinkRatio: 0.8,
} as const;

export function decideAfterRound(input: ConvergenceInput, policy = convergencePolicy): ConvergenceDecision {
  const last = input.rounds[input.rounds.length - 1];
  if (!last) throw new RangeError('decideAfterRound needs at least one round');
  const dirty = input.dirtyBytes;
  const bytesPerMs = last.ms > 0 ? last.bytes / last.ms : Infinity;
  const finalMs = dirty / bytesPerMs;
  const sent = `round ${last.round} sent ${amount(last.bytes)} in ${Math.round(last.ms)} ms, ${amount(dirty)} written meanwhile`;
  if (dirty <= policy.finalRoundBytes || finalMs <= policy.finalRoundMs)
    return { next: 'stop-copy', reason: `${sent}: converged, final round now` };
  const ratio = last.bytes > 0 ? dirty / last.bytes : Infinity;
  if (ratio > policy.maxShrinkRatio) {
    const why = `${sent} (${percent(ratio)} of it): not converging`;
    return input.postCopyAllowed
      ? { next: 'post-copy', reason: `${why}, post-copy now` }
      : { next: 'stop-copy', reason: `${why}, final round now` };
  }
  if (input.rounds.length >= input.maxRounds)
    return { next: 'stop-copy', reason: `${sent}: ${input.maxRounds} rounds done (the limit), final round now` };
  return { next: 'round', reason: `${sent} (${percent(ratio)} of it): another round` };
}

function amount(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / 1048576).toFixed(1)} MiB` : `${Math.round(bytes / 1024)} KiB`;
}

function percent(ratio: number): string {
  return Number.isFinite(ratio) ? `${Math.round(ratio * 100)}%` : 'all';
}

/**
 * Fault injection for tests of the failure paths: ROAM_FAILPOINT=NAME makes the process that
 * reaches point NAME fail there as a real fault would. Unset (always, outside tests), it costs a
 * string comparison.
 */
export type FailpointName =
  /** Destination, data channel open: its agent is killed (SIGKILL) and it dies. */
  | 'destination-ready'
  /** Destination, in the first pre-copy round (the guest still runs on the source). */
  | 'destination-round'
  /** Destination, state received (the guest is stopped on the source). */
  | 'destination-state'
  /** Destination, state restored, before the guest runs: the source (committed) must find out by asking. */
  | 'destination-commit'
  /** Destination, first page frame arrives damaged: a checksum mismatch. */
  | 'corrupt-pages'
  /** Destination, in post-copy (the guest runs there, its memory still arriving): dies soon after. */
  | 'destination-post-copy'
  /** Source, in post-copy: its agent and container process die once a quarter of the missing memory was pushed. */
  | 'source-post-copy'
  /** Source, in post-copy: pushes nothing, as over a link too slow to, so pages only come when the guest faults on them. */
  | 'source-push-held';

export function failpointActive(name: FailpointName): boolean {
  return process.env.ROAM_FAILPOINT === name;
}

/** At a kill failpoint: the agent and this container process die on the spot. */
export function killAgentAt(name: FailpointName): void {
  if (!failpointActive(name)) return;
  process.kill(process.ppid, 'SIGKILL');
  process.kill(process.pid, 'SIGKILL');
}

/** A kill failpoint a little later, while what just began (post-copy's transfer) goes on. */
export function killAgentSoon(name: FailpointName, ms = 30): void {
  if (failpointActive(name)) setTimeout(() => killAgentAt(name), ms);
}

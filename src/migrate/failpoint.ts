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
  /** Destination, commit received, before the guest runs: the source must find out by asking. */
  | 'destination-commit'
  /** Destination, first page frame arrives damaged: a checksum mismatch. */
  | 'corrupt-pages';

export function failpointActive(name: FailpointName): boolean {
  return process.env.ROAM_FAILPOINT === name;
}

/** At a kill failpoint: the destination's agent and this container process die on the spot. */
export function killAgentAt(name: FailpointName): void {
  if (!failpointActive(name)) return;
  process.kill(process.ppid, 'SIGKILL');
  process.kill(process.pid, 'SIGKILL');
}

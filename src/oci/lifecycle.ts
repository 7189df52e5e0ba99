import { RuntimeStateError } from './errors.js';

/**
 * A container's lifecycle as the runtime-spec defines it, as data. `creating` is never stored:
 * the state file is written once `create` has the guest process waiting for `start`.
 */
export type Status = 'created' | 'running' | 'stopped';

/** The moves a container may make; `stopped` is final (only `delete` follows). */
const transitions: Record<Status, readonly Status[]> = {
  created: ['running', 'stopped'],
  running: ['stopped'],
  stopped: [],
};

/** What each operation needs the container to be in. */
const allowedIn = {
  start: ['created'],
  kill: ['created', 'running'],
  delete: ['stopped'],
} as const satisfies Record<string, readonly Status[]>;

export type Operation = keyof typeof allowedIn;

export function canMove(from: Status, to: Status): boolean {
  return from === to || transitions[from].includes(to);
}

/** The status after `from` moved to `to`; a move the table does not allow is a RuntimeStateError. */
export function move(id: string, from: Status, to: Status): Status {
  if (!canMove(from, to)) throw new RuntimeStateError(`container ${id} cannot go from ${from} to ${to}`);
  return to;
}

/** Refuses `operation` on a container in `status` (runc's wording: "cannot start a container that is running"). */
export function requireStatus(id: string, status: Status, operation: Operation): void {
  if (!(allowedIn[operation] as readonly Status[]).includes(status)) {
    throw new RuntimeStateError(`cannot ${operation} container ${id}: it is ${status}`);
  }
}

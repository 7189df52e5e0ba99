/**
 * The base of every error Roam raises on purpose. `code` is stable (programs and tests branch on
 * it, never on the message); the message is one line for a person; `cause` keeps the error that
 * led to it. Anything thrown that is not a RoamError is a bug and is reported with its stack.
 */
export abstract class RoamError extends Error {
  abstract readonly code: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export const isRoamError = (error: unknown): error is RoamError => error instanceof RoamError;

/** True for a RoamError with this code. */
export const hasCode = (error: unknown, code: string): boolean => isRoamError(error) && error.code === code;

/** ROAM_DEBUG=1 switches on stacks and cause chains in what the CLI and the daemons report. */
export const debugEnabled = () => process.env.ROAM_DEBUG === '1';

/**
 * How an error reads in one report: a RoamError as its message (with ROAM_DEBUG=1, its code, stack
 * and causes too); anything else, a bug, with its stack.
 */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (isRoamError(error) && !debugEnabled()) return error.message;
  const lines = [error.stack ?? error.message];
  if (isRoamError(error)) lines[0] = `[${error.code}] ${lines[0]}`;
  for (let cause = error.cause; cause !== undefined; cause = cause instanceof Error ? cause.cause : undefined) {
    lines.push(`caused by: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}`);
  }
  return lines.join('\n');
}

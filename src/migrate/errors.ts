/** A migration that failed; the message says where the container runs now. */
export class MigrationError extends Error {}

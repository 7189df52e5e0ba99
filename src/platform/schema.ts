import * as v from 'valibot';

/**
 * Wire data checked at the boundary: valibot schemas for JSON from peers, clients, files and
 * other processes, with one-line messages that name the field (`args: expected an array of
 * strings`). The channels and daemons say what failed; this file says what was wrong.
 */

/**
 * A JSON object with these fields (others are dropped), for wire types. Its messages say what was
 * expected: `what` when the value is not an object at all, and for a missing field what that
 * field's own schema expects (valibot would otherwise report the object's message there).
 */
export function jsonObject<const E extends v.ObjectEntries>(entries: E, what: string) {
  return v.pipe(plainObject(what), v.object(entries, objectMessage(entries, what)));
}

/** jsonObject(), but a field it does not know is an error too. */
export function strictJsonObject<const E extends v.ObjectEntries>(entries: E, what: string) {
  return v.pipe(plainObject(what), v.strictObject(entries, objectMessage(entries, what)));
}

/** A JSON object of values of one schema, keyed by any string. */
export function jsonRecord<const S extends v.GenericSchema>(values: S, what: string) {
  return v.pipe(plainObject(what), v.record(v.string(), values, `expected ${what}`));
}

/** An object and not an array (valibot's objects take arrays for objects). */
const plainObject = (what: string) => v.custom<Record<string, unknown>>(isObject, `expected ${what}`);

function objectMessage(entries: v.ObjectEntries, what: string) {
  return (issue: v.BaseIssue<unknown>): string => {
    const key = issue.path?.at(-1)?.key;
    if (typeof key !== 'string') return `expected ${what}`;
    const entry = entries[key];
    if (!entry) return 'unexpected field';
    return v.safeParse(entry, undefined).issues?.[0].message ?? 'required';
  };
}

/** A TCP port number (1-65535), as the wire types of the daemons and the cluster file carry them. */
export const tcpPortSchema = v.pipe(
  v.number('expected a TCP port number'),
  v.integer('expected a TCP port number'),
  v.minValue(1, 'expected a TCP port number (1-65535)'),
  v.maxValue(65535, 'expected a TCP port number (1-65535)'),
);

/** Where an issue lies, as a person would write it: `dirs[0].hostPath`, `env["A B"]`. */
export function issuePath(issue: v.BaseIssue<unknown>): string {
  let path = '';
  for (const { key } of issue.path ?? []) {
    if (typeof key === 'number') path += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_$][\w$]*$/.test(key)) path += path ? `.${key}` : key;
    else path += `[${JSON.stringify(key)}]`;
  }
  return path;
}

/** The first issue as one line: `args: expected an array of strings`. */
export function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  const issue = issues[0];
  if (!issue) return 'invalid value';
  const path = issuePath(issue);
  return path ? `${path}: ${issue.message}` : issue.message;
}

/** The value as the schema's output, or the first thing wrong with it as one line. */
export function check<S extends v.GenericSchema>(
  schema: S,
  value: unknown,
): { ok: true; value: v.InferOutput<S> } | { ok: false; message: string } {
  const result = v.safeParse(schema, value, { abortEarly: true });
  return result.success ? { ok: true, value: result.output } : { ok: false, message: describeIssues(result.issues) };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

import * as v from 'valibot';
import { jsonObject, jsonRecord } from '../platform/schema.js';

/**
 * What a checkpoint of a container of several processes carries besides each process's guest
 * (the image's `container` blob): who the processes are, those that had ended, and the broker's
 * pairs (connections, pipes, output) with their bytes in flight. Checked where it enters, on restore.
 */

const address = jsonObject(
  { family: v.picklist(['inet', 'inet6', 'unix']), addr: v.string(), port: v.number() },
  'an address',
);
const both = <S extends v.GenericSchema>(schema: S) => v.tuple([schema, schema]);

const pairState = jsonObject(
  {
    id: v.pipe(v.number(), v.integer(), v.minValue(0)),
    family: v.picklist(['inet', 'inet6', 'unix']),
    addresses: both(address),
    data: both(v.string()),
    fin: both(v.boolean()),
    open: both(v.boolean()),
  },
  'a stream pair',
);

/** The broker's pairs, and which process holds each side (OWNER: the container's owner). */
export const BrokerState = jsonObject(
  { pairs: v.array(pairState), holders: jsonRecord(both(v.number()), 'holders by pair id') },
  'the broker state',
);
export type BrokerState = v.InferOutput<typeof BrokerState>;

/** A process of the container, with the pairs the owner reads its output from (when prefixed and not piped). */
const member = jsonObject(
  {
    name: v.string(),
    onExit: v.picklist(['continue', 'stop-container']),
    output: jsonObject({ stdout: v.optional(v.number()), stderr: v.optional(v.number()) }, 'output pairs'),
  },
  'a process',
);
export type Member = v.InferOutput<typeof member>;

const processEnd = jsonObject(
  {
    name: v.string(),
    state: v.picklist(['exited', 'failed', 'stopped']),
    status: v.optional(v.number()),
    reason: v.optional(v.string()),
  },
  'a process end',
);
export type ProcessEnd = v.InferOutput<typeof processEnd>;

export const MultiProcessState = jsonObject(
  {
    /** Every process, by index (the broker's holders name them by it). */
    members: v.array(member),
    /** The processes that had ended before the checkpoint, as they ended. */
    ends: v.array(processEnd),
    broker: BrokerState,
  },
  "a container's state",
);
export type MultiProcessState = v.InferOutput<typeof MultiProcessState>;

/**
 * The agent's HTTP/JSON API, version 1 (documented in docs/agent-api.yaml): wire types as valibot
 * schemas, checked wherever they cross the wire (the agent checks request bodies, AgentClient the
 * answers it reads). Each type is its schema's output, so there is one definition of each.
 */
import * as v from 'valibot';
import type { DirtyTrackingMethod } from '../migrate/dirty/tracker.js';
import type { MigrationMode, MigrationProgress, MigrationReport } from '../migrate/sender.js';
import { isAllowRule } from '../platform/allow-list.js';
import { type Isa, isas } from '../platform/isa.js';
import { describeIssues, jsonObject, jsonRecord, strictJsonObject, tcpPortSchema } from '../platform/schema.js';

export const apiPrefix = '/v1';

// Names the migration code owns as types, listed here so that reading the API does not load the
// migration code; a Record of each type makes the compiler check that the lists are complete.
const names = <T extends string>(set: Record<T, true>) => Object.keys(set) as T[];
const modes = names<MigrationMode>({
  'stop-copy': true,
  'pre-copy': true,
  'post-copy': true,
  'pre-post': true,
  auto: true,
});
const resolvedModes = names<MigrationReport['mode']>({
  'stop-copy': true,
  'pre-copy': true,
  'post-copy': true,
  'pre-post': true,
});
const trackingMethods = names<DirtyTrackingMethod>({ 'userfaultfd-wp': true, compare: true });
const phases = names<MigrationProgress['phase']>({
  connecting: true,
  'pre-copy': true,
  'stop-copy': true,
  'post-copy': true,
});

// Building blocks.
const text = v.string('expected a string');
const strings = v.array(text, 'expected an array of strings');
const count = v.pipe(
  v.number('expected a number'),
  v.integer('expected an integer'),
  v.minValue(0, 'expected an integer >= 0'),
);
const positive = v.pipe(
  v.number('expected a number'),
  v.integer('expected an integer'),
  v.minValue(1, 'expected >= 1'),
);
const timestamp = v.pipe(v.string('expected an ISO 8601 timestamp'), v.isoTimestamp('expected an ISO 8601 timestamp'));
const digest = v.pipe(
  v.string('expected the sha256 digest of an uploaded module'),
  v.regex(/^[0-9a-f]{64}$/, 'expected the sha256 digest of an uploaded module'),
);
const containerId = v.pipe(
  v.string('expected a container ID (12 hex digits)'),
  v.regex(/^[0-9a-f]{12}$/, 'expected a container ID (12 hex digits)'),
);

const ports = v.pipe(
  v.array(tcpPortSchema, 'expected an array of TCP port numbers'),
  v.check((list) => new Set(list).size === list.length, 'expected distinct TCP port numbers'),
);

export const ContainerStatusSchema = v.picklist(
  ['starting', 'incoming', 'running', 'migrating', 'unsettled', 'moved', 'exited', 'failed', 'stopped'],
  'expected a container status',
);
export type ContainerStatus = v.InferOutput<typeof ContainerStatusSchema>;
/** Statuses of a container that no longer runs on that node. */
export const terminalStatuses: readonly ContainerStatus[] = ['exited', 'failed', 'stopped', 'moved'];

const DirSchema = jsonObject({ guestPath: text, hostPath: text }, 'a directory {guestPath, hostPath}');

/** GET /v1/containers (an array of them), GET /v1/containers/{id}, and the answers of start and stop. */
export const ContainerInfoSchema = jsonObject(
  {
    id: containerId,
    name: v.optional(text),
    node: text,
    status: ContainerStatusSchema,
    moduleDigest: digest,
    args: strings,
    /** Where each preopened directory lives on this node. */
    dirs: v.array(DirSchema, 'expected an array of {guestPath, hostPath}'),
    createdAt: timestamp,
    pid: v.optional(positive),
    exitCode: v.optional(v.pipe(v.number('expected an integer'), v.integer('expected an integer'))),
    error: v.optional(text),
    /** Its generation: 1 when started, raised by each migration (docs/fencing.md). */
    epoch: v.optional(positive),
    /**
     * Why it is where it is, when that needs saying: status `unsettled` (stopped here, a migration's
     * outcome unknown until `roam recover`), or the last migration that rolled back.
     */
    reason: v.optional(text),
    /** Set once the container moved on: the node it went to. */
    movedTo: v.optional(text),
    /** Nodes it ran on before this one, oldest first. */
    history: strings,
    /** Guest ports it listens on; clients reach them through the cluster's gateway. */
    ports,
  },
  'a container record {id, node, status, moduleDigest, args, dirs, createdAt, history, ports}',
);
export type ContainerInfo = v.InferOutput<typeof ContainerInfoSchema>;
export const ContainerListSchema = v.array(ContainerInfoSchema, 'expected an array of container records');

/** POST /v1/containers. */
export const StartRequestSchema = jsonObject(
  {
    /** sha256 of a module already uploaded with PUT /v1/modules/{digest}. */
    module: digest,
    args: strings,
    env: v.optional(jsonRecord(text, 'an object whose values are strings')),
    /** Directories on this node to preopen. */
    dirs: v.optional(
      v.array(
        jsonObject({ hostPath: text, guestPath: text }, 'a directory {hostPath, guestPath}'),
        'expected [{hostPath, guestPath}]',
      ),
    ),
    name: v.optional(v.pipe(text, v.nonEmpty('expected a non-empty string'))),
    /** Guest ports to listen on (needs the agent's --gateway): fds 3.. of the guest, LISTEN_FDS=N. */
    ports: v.optional(ports),
    /** Where its outgoing connections may go (platform/allow-list.ts); absent: anywhere. */
    allow: v.optional(
      v.array(
        v.pipe(
          text,
          v.check((rule) => isAllowRule(rule), 'expected an allow-list rule ADDR[/PREFIX][:PORT] or none'),
        ),
        'expected an array of allow-list rules',
      ),
    ),
  },
  'a JSON object {module, args, env?, dirs?, name?, ports?, allow?}',
);
export type StartRequest = v.InferOutput<typeof StartRequestSchema>;

/** POST /v1/migrations, sent by a source agent to the destination's: make ready to receive this container. */
export const IncomingRequestSchema = jsonObject(
  {
    id: containerId,
    name: v.optional(text),
    module: digest,
    args: strings,
    /** Guest paths of its preopened directories (their contents arrive over the data channel). */
    guestPaths: strings,
    createdAt: timestamp,
    history: strings,
    ports: v.optional(ports),
    /** The epoch the migration raises the container to: the destination runs it only with this one. */
    epoch: v.optional(positive),
  },
  'a JSON object {id, name?, module, args, guestPaths, createdAt, history, ports?, epoch}',
);
export type IncomingRequest = v.InferOutput<typeof IncomingRequestSchema>;

export const IncomingReplySchema = jsonObject(
  {
    host: v.pipe(text, v.nonEmpty('expected a host')),
    port: tcpPortSchema,
    ticket: v.pipe(text, v.nonEmpty('expected a ticket')),
  },
  'the data channel {host, port, ticket}',
);
export type IncomingReply = v.InferOutput<typeof IncomingReplySchema>;

/** POST /v1/containers/{id}/fence, sent by a source that lost the destination's answer to the commit. */
export const FenceRequestSchema = jsonObject({ epoch: positive }, 'a JSON object {epoch}');
export type FenceRequest = v.InferOutput<typeof FenceRequestSchema>;

/** 'aborted': the guest of that epoch never ran here and never will; 'ran': it did. */
export const FenceReplySchema = jsonObject(
  { answer: v.picklist(['aborted', 'ran'], 'expected aborted or ran') },
  'the fence answer {answer}',
);
export type FenceReply = v.InferOutput<typeof FenceReplySchema>;

/** POST /v1/containers/{id}/migrate. */
export const MigrateRequestSchema = jsonObject(
  {
    /** The destination agent (token: this agent's own when absent, as in a local cluster). */
    to: jsonObject(
      {
        name: v.pipe(text, v.nonEmpty('expected the name of the destination node')),
        url: v.pipe(
          v.string('expected the base URL of the destination agent'),
          v.url('expected the base URL of the destination agent'),
        ),
        token: v.optional(text),
      },
      '{name, url} of the destination agent',
    ),
    mode: v.optional(v.picklist(modes, `expected one of ${modes.join(', ')}`)),
    maxRounds: v.optional(positive),
    dirtyTracking: v.optional(v.picklist(trackingMethods, `expected one of ${trackingMethods.join(', ')}`)),
    /** Post-copy: push the guest's hot set first (default true). */
    hotFirst: v.optional(v.boolean('expected true or false')),
    /** Pre-copy that cannot converge ends in post-copy where the destination can (default false). */
    postCopyFallback: v.optional(v.boolean('expected true or false')),
  },
  'a JSON object {to: {name, url, token?}, mode?, maxRounds?, dirtyTracking?, hotFirst?, postCopyFallback?}',
);
export type MigrateRequest = v.InferOutput<typeof MigrateRequestSchema>;

// The migrate stream's lines. Numbers of the report are not held to be integers: a committed
// migration must never read as a failed one over a detail of its statistics.
const number = v.number('expected a number');

const MigrationProgressSchema = jsonObject(
  {
    phase: v.picklist(phases, `expected one of ${phases.join(', ')}`),
    round: v.optional(number),
    sentBytes: number,
    memoryBytes: number,
    decision: v.optional(text),
  },
  'migration progress {phase, sentBytes, memoryBytes}',
);

const MigrationResultSchema = jsonObject(
  {
    mode: v.picklist(resolvedModes, `expected one of ${resolvedModes.join(', ')}`),
    dirtyTracking: text,
    memoryBytes: number,
    sentBytes: number,
    rounds: v.array(
      jsonObject({ round: number, bytes: number, ms: number }, 'a round {round, bytes, ms}'),
      'expected an array of rounds',
    ),
    downtimeMs: number,
    stopCopyMs: jsonObject({ stop: number, finalRound: number, restore: number }, '{stop, finalRound, restore}'),
    postCopy: v.optional(
      jsonObject(
        {
          missingBytes: number,
          requestedBytes: number,
          pushedBytes: number,
          residentMs: number,
          faults: number,
          faultWaitMsMean: number,
          faultWaitMsMax: number,
          hotBytes: v.optional(number),
        },
        'post-copy statistics',
      ),
    ),
    decision: v.optional(text),
    totalMs: number,
    from: text,
    to: text,
  },
  'a migration report',
);
/** The sender's report, and the nodes it went from and to. */
export type MigrationResult = v.InferOutput<typeof MigrationResultSchema>;

/** POST /v1/containers/{id}/migrate answers with a stream of these, one JSON object per line. */
export const MigrateLineSchema = v.union(
  [
    strictJsonObject({ progress: MigrationProgressSchema }, '{progress}'),
    strictJsonObject({ result: MigrationResultSchema }, '{result}'),
    strictJsonObject({ error: text }, '{error}'),
  ],
  // The option whose field the line has says what is wrong inside it.
  (issue) => {
    const inner = issue.issues?.find((i) => i.path?.[0]?.origin === 'value');
    return inner ? describeIssues([inner]) : 'expected {progress}, {result} or {error}';
  },
);
export type MigrateLine = v.InferOutput<typeof MigrateLineSchema>;

/** PUT /v1/modules/{digest}. */
export const ModuleStoredSchema = jsonObject({ digest, bytes: count }, 'the stored module {digest, bytes}');

/** A linear power model: watts at idle and at full load (for placement by energy). */
export const PowerModelSchema = jsonObject(
  {
    idleWatts: v.pipe(number, v.minValue(0, 'expected watts >= 0')),
    peakWatts: v.pipe(number, v.minValue(0, 'expected watts >= 0')),
  },
  'a power model {idleWatts, peakWatts}',
);
export type PowerModel = v.InferOutput<typeof PowerModelSchema>;

const isaNames = Object.keys(isas) as Isa[];

/** GET /v1/node. */
export const NodeFactsSchema = jsonObject(
  {
    name: text,
    isa: v.picklist(isaNames, `expected one of ${isaNames.join(', ')}`),
    host: text,
    cores: positive,
    memoryBytes: count,
    node: text,
    v8: text,
    /** True when this node's CPU is emulated (qemu-user: no userfaultfd either; or a VM under TCG): much slower. */
    emulated: v.boolean('expected true or false'),
    capabilities: jsonObject(
      {
        /** How pre-copy finds written pages here. */
        dirtyTracking: v.picklist(trackingMethods, `expected one of ${trackingMethods.join(', ')}`),
        /** Why exact kernel tracking is not used, when it is not. */
        dirtyTrackingNote: v.optional(text),
        /** Whether containers can arrive here by post-copy (userfaultfd lazy restore through the addon). */
        postCopy: v.boolean('expected true or false'),
        /** Why not, when not. */
        postCopyNote: v.optional(text),
      },
      '{dirtyTracking, postCopy}',
    ),
    power: PowerModelSchema,
    agentVersion: text,
    startedAt: timestamp,
  },
  'node facts {name, isa, host, cores, memoryBytes, node, v8, emulated, capabilities, power, agentVersion, startedAt}',
);
export type NodeFacts = v.InferOutput<typeof NodeFactsSchema>;

/** The agent's HTTP/JSON API, version 1 (documented in docs/agent-api.yaml): wire types. */
import type { DirtyTrackingMethod } from '../migrate/dirty/tracker.js';
import type { MigrationMode, MigrationProgress, MigrationReport } from '../migrate/sender.js';

export const apiPrefix = '/v1';

export type ContainerStatus =
  | 'starting'
  | 'incoming'
  | 'running'
  | 'migrating'
  | 'moved'
  | 'exited'
  | 'failed'
  | 'stopped';
/** Statuses of a container that no longer runs on that node. */
export const terminalStatuses: readonly ContainerStatus[] = ['exited', 'failed', 'stopped', 'moved'];

export interface ContainerInfo {
  id: string;
  name?: string;
  node: string;
  status: ContainerStatus;
  moduleDigest: string;
  args: string[];
  /** Where each preopened directory lives on this node. */
  dirs: { guestPath: string; hostPath: string }[];
  createdAt: string;
  pid?: number;
  exitCode?: number;
  error?: string;
  /** Set once the container moved on: the node it went to. */
  movedTo?: string;
  /** Nodes it ran on before this one, oldest first. */
  history: string[];
  /** Guest ports it listens on; clients reach them through the cluster's gateway. */
  ports: number[];
}

export interface StartRequest {
  /** sha256 of a module already uploaded with PUT /v1/modules/{digest}. */
  module: string;
  args: string[];
  env?: Record<string, string>;
  /** Directories on this node to preopen. */
  dirs?: { hostPath: string; guestPath: string }[];
  name?: string;
  /** Guest ports to listen on (needs the agent's --gateway): fds 3.. of the guest, LISTEN_FDS=N. */
  ports?: number[];
}

/** Sent by a source agent to the destination's: make ready to receive this container. */
export interface IncomingRequest {
  id: string;
  name?: string;
  module: string;
  args: string[];
  /** Guest paths of its preopened directories (their contents arrive over the data channel). */
  guestPaths: string[];
  createdAt: string;
  history: string[];
  ports: number[];
}

export interface IncomingReply {
  host: string;
  port: number;
  ticket: string;
}

export interface MigrateRequest {
  /** The destination agent (token: this agent's own when absent, as in a local cluster). */
  to: { name: string; url: string; token?: string };
  mode?: MigrationMode;
  maxRounds?: number;
  dirtyTracking?: DirtyTrackingMethod;
}

/** POST /v1/containers/{id}/migrate answers with a stream of these, one JSON object per line. */
export type MigrateLine = { progress: MigrationProgress } | { result: MigrationResult } | { error: string };

export type MigrationResult = MigrationReport & { from: string; to: string };

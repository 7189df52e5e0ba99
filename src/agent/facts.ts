import { availableParallelism, hostname, totalmem } from 'node:os';
import { runsEmulated } from '../platform/foreign-node.js';
import { hostIsa, type Isa } from '../platform/isa.js';

/** A linear power model: watts at idle and at full load (for placement by energy). */
export interface PowerModel {
  idleWatts: number;
  peakWatts: number;
}

/** Typical figures per ISA (a server-class x86-64, Arm and POWER/Z boards); override per node. */
export const defaultPower: Record<Isa, PowerModel> = {
  x64: { idleWatts: 60, peakWatts: 220 },
  arm64: { idleWatts: 8, peakWatts: 40 },
  ppc64le: { idleWatts: 120, peakWatts: 400 },
  s390x: { idleWatts: 300, peakWatts: 900 },
  armv7l: { idleWatts: 2, peakWatts: 6 },
};

export interface NodeFacts {
  name: string;
  isa: Isa;
  host: string;
  cores: number;
  memoryBytes: number;
  node: string;
  v8: string;
  /** True when this node's CPU is emulated (qemu-user: no userfaultfd either; or a VM under TCG): much slower. */
  emulated: boolean;
  capabilities: {
    /** How pre-copy finds written pages here. */
    dirtyTracking: 'userfaultfd-wp' | 'compare';
    /** Why exact kernel tracking is not used, when it is not. */
    dirtyTrackingNote?: string;
    /** Whether containers can arrive here by post-copy (userfaultfd lazy restore through the addon). */
    postCopy: boolean;
    /** Why not, when not. */
    postCopyNote?: string;
  };
  power: PowerModel;
  agentVersion: string;
  startedAt: string;
}

/** `toldEmulated`: the node was told its CPU is emulated (a VM cannot see that TCG runs it). */
export function nodeFacts(
  name: string,
  power: PowerModel,
  capabilities: NodeFacts['capabilities'],
  toldEmulated: boolean,
): NodeFacts {
  return {
    name,
    isa: hostIsa(),
    host: hostname(),
    cores: availableParallelism(),
    memoryBytes: totalmem(),
    node: process.version,
    v8: process.versions.v8,
    emulated: toldEmulated || runsEmulated(),
    capabilities,
    power,
    agentVersion: '0.1.0',
    startedAt: new Date().toISOString(),
  };
}

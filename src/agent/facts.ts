import { availableParallelism, hostname, totalmem } from 'node:os';
import { runsEmulated } from '../platform/foreign-node.js';
import { hostIsa, type Isa } from '../platform/isa.js';
import type { NodeFacts, PowerModel } from './api.js';

/** The node's facts as GET /v1/node serves them; their schema is in api.ts. */
export type { NodeFacts, PowerModel };

/** Typical figures per ISA (a server-class x86-64, Arm and POWER/Z boards); override per node. */
export const defaultPower: Record<Isa, PowerModel> = {
  x64: { idleWatts: 60, peakWatts: 220 },
  arm64: { idleWatts: 8, peakWatts: 40 },
  ppc64le: { idleWatts: 120, peakWatts: 400 },
  s390x: { idleWatts: 300, peakWatts: 900 },
  armv7l: { idleWatts: 2, peakWatts: 6 },
};

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

export { synchronousBlocker, type Blocker } from './blocking.js';
export { systemClock, type ClockSource, type ClockState } from './clock.js';
export { Errno } from './constants.js';
export type { DescriptorState } from './descriptors/descriptor.js';
export { WasiExit } from './errors.js';
export { WasiHost, type FdState, type WasiHostState, type WasiOptions, type WasiRestoreOptions } from './host.js';
export type { Preopen } from './sandbox.js';

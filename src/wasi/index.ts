export { type Blocker, synchronousBlocker } from '../engine/blocking.js';
export { type ClockSource, type ClockState, systemClock } from './clock.js';
export { Errno, HOST_MODULES, POSIX_MODULE, WASI_MODULE } from './constants.js';
export type { DescriptorState } from './descriptors/descriptor.js';
export { WasiExit } from './errors.js';
export {
  type DupState,
  type FdState,
  WasiHost,
  type WasiHostState,
  type WasiOptions,
  type WasiRestoreOptions,
} from './host.js';
export type { Preopen } from './sandbox.js';

import { ociVersion } from './state-store.js';

/**
 * `roam-runtime features` (runtime-spec, features.md): what this runtime implements. No hooks, no
 * Linux section: a WebAssembly guest has no namespaces, cgroups, capabilities or seccomp to set.
 */
export const features = {
  ociVersionMin: '1.0.0',
  ociVersionMax: ociVersion,
  hooks: [],
  mountOptions: ['bind', 'rbind', 'ro', 'rw'],
  annotations: {
    'org.roam.runtime.guest': 'wasm32-wasi modules (plain, or migratable from roam build)',
  },
} as const;

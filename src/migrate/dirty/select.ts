import { CompareTracker } from './compare-tracker.js';
import { UffdWpTracker } from './native-tracker.js';
import type { DirtyTracker, DirtyTrackingMethod } from './tracker.js';

/**
 * The dirty tracker for a guest's linear memory (`memory`, a view of all of it): exact kernel
 * tracking (userfaultfd write-protect, native addon) when available here, else the pure-TypeScript
 * comparison. `prefer: 'compare'` forces the latter; preferring 'userfaultfd-wp' where it is not
 * available falls back to 'compare' too. The native tracker starts tracking now, so create the
 * tracker before the first scan and scan the same memory.
 */
export function createDirtyTracker(memory: Uint8Array, prefer?: DirtyTrackingMethod): DirtyTracker {
  if (prefer !== 'compare') {
    const native = UffdWpTracker.create(memory);
    if (native) return native;
  }
  return new CompareTracker();
}

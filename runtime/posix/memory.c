/*
 * Memory calls beyond wasi-libc's emulated mmap/munmap (-lwasi-emulated-mman). WebAssembly memory
 * has no page protection, is never swapped and cannot be given back: locking, syncing and
 * protection changes succeed without effect (harmless for a correct program; a guard page
 * simply never faults). Discarding pages (MADV_DONTNEED, MADV_REMOVE) would have to zero them,
 * which Linux promises and this layer cannot do safely for file mappings: it fails instead.
 */
#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>
#include "posix.h"

ROAM_WEAK int mprotect(void *address, size_t length, int protection) {
  (void)address, (void)length, (void)protection;
  return 0;
}

ROAM_WEAK int madvise(void *address, size_t length, int advice) {
  (void)address, (void)length;
  if (advice == MADV_DONTNEED || advice == MADV_REMOVE)
    return roam_unsupported("madvise", "WebAssembly memory cannot be discarded or given back", EINVAL);
  return 0;
}

/* Advice only (POSIX_MADV_DONTNEED promises no zeroing). */
ROAM_WEAK int posix_madvise(void *address, size_t length, int advice) {
  (void)address, (void)length, (void)advice;
  return 0;
}

ROAM_WEAK int mlock(const void *address, size_t length) {
  (void)address, (void)length;
  return 0;
}

ROAM_WEAK int munlock(const void *address, size_t length) {
  (void)address, (void)length;
  return 0;
}

ROAM_WEAK int mlockall(int flags) {
  (void)flags;
  return 0;
}

ROAM_WEAK int munlockall(void) { return 0; }

/* wasi-libc's mmap copies a file in; there is no shared mapping to write back. */
ROAM_WEAK int msync(void *address, size_t length, int flags) {
  (void)address, (void)length, (void)flags;
  return 0;
}

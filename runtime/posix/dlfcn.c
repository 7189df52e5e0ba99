/* Dynamic loading: a WebAssembly module is linked whole, so there is nothing to load. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include "posix.h"

static char message[] = "dynamic loading is not available in WebAssembly (roam)";
static int failed;

static void *fail(const char *function) {
  failed = 1;
  return roam_unsupported_null(function, ROAM_NO_DYNAMIC_LOADING, ENOSYS);
}

ROAM_WEAK void *dlopen(const char *file, int mode) {
  (void)file, (void)mode;
  return fail("dlopen");
}

ROAM_WEAK void *dlsym(void *__restrict handle, const char *__restrict name) {
  (void)handle, (void)name;
  return fail("dlsym");
}

ROAM_WEAK int dlclose(void *handle) {
  (void)handle;
  fail("dlclose");
  return -1;
}

/* The last failure's message, once (POSIX: NULL when nothing failed since the last call). */
ROAM_WEAK char *dlerror(void) {
  if (!failed) return NULL;
  failed = 0;
  return message;
}

ROAM_WEAK int dladdr(const void *address, Dl_info *info) {
  (void)address, (void)info;
  return 0;
}

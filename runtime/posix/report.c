/* roam_unsupported: the one-line notice for calls the layer cannot provide (see posix.h). */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>
#include "posix.h"

static const char *reported[128];
static size_t reportedCount;

static const char *errnoName(int error) {
  switch (error) {
  case ENOSYS: return "ENOSYS";
  case EPERM: return "EPERM";
  case ENOTTY: return "ENOTTY";
  case EINVAL: return "EINVAL";
  case ENOENT: return "ENOENT";
  case EACCES: return "EACCES";
  case ENOTSUP: return "ENOTSUP";
  case ECHILD: return "ECHILD";
  case EINTR: return "EINTR";
  case EAFNOSUPPORT: return "EAFNOSUPPORT";
  case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
  case ENETUNREACH: return "ENETUNREACH";
  default: return "?";
  }
}

static int alreadyReported(const char *function) {
  for (size_t i = 0; i < reportedCount; i++)
    if (strcmp(reported[i], function) == 0) return 1;
  if (reportedCount < sizeof reported / sizeof reported[0]) reported[reportedCount++] = function;
  return 0;
}

static void append(char *line, size_t *length, size_t size, const char *text) {
  size_t n = strlen(text);
  if (*length + n >= size) n = size - 1 - *length;
  memcpy(line + *length, text, n);
  *length += n;
}

static void writeLine(const char *const parts[], size_t count) {
  char line[512];
  size_t length = 0;
  for (size_t i = 0; i < count; i++) append(line, &length, sizeof line - 1, parts[i]);
  line[length++] = '\n';
  size_t written = 0;
  while (written < length) {
    ssize_t n = write(2, line + written, length - written);
    if (n <= 0) break;
    written += (size_t)n;
  }
}

static void report(const char *function, const char *why, int error, const char *result) {
  if (!alreadyReported(function)) {
    /* "fcntl(F_DUPFD)" names its own call */
    const char *call = strchr(function, '(') ? " is" : "() is";
    const char *parts[] = {"roam: ", function, call, " not available in WebAssembly (", why, "); returning ",
                           result, " with errno ", errnoName(error)};
    writeLine(parts, sizeof parts / sizeof parts[0]);
  }
  errno = error;
}

void roam_notice(const char *function, const char *message) {
  int saved = errno;
  if (!alreadyReported(function)) {
    const char *parts[] = {"roam: ", function, "() ", message};
    writeLine(parts, sizeof parts / sizeof parts[0]);
  }
  errno = saved;
}

int roam_unsupported(const char *function, const char *why, int error) {
  report(function, why, error, "-1");
  return -1;
}

void *roam_unsupported_null(const char *function, const char *why, int error) {
  report(function, why, error, "NULL");
  return NULL;
}

int roam_check_fd(int fd) {
  __wasi_fdstat_t stat;
  __wasi_errno_t error = __wasi_fd_fdstat_get((__wasi_fd_t)fd, &stat);
  if (error != 0) {
    errno = error;
    return -1;
  }
  return 0;
}

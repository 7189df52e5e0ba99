/*
 * The rest: file locks (one process holds them all, so every lock is granted), syslog (to
 * stderr), getpass, sync, chroot, the -fstack-protector canary.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <syslog.h>
#include <unistd.h>
#include "posix.h"

/* One process: no one else can hold a lock, so every request is granted at once. */
ROAM_WEAK int flock(int fd, int operation) {
  if (roam_check_fd(fd) != 0) return -1;
  int kind = operation & ~LOCK_NB;
  if (kind != LOCK_SH && kind != LOCK_EX && kind != LOCK_UN) return errno = EINVAL, -1;
  return 0;
}

ROAM_WEAK int lockf(int fd, int command, off_t length) {
  (void)length;
  if (roam_check_fd(fd) != 0) return -1;
  if (command != F_ULOCK && command != F_LOCK && command != F_TLOCK && command != F_TEST)
    return errno = EINVAL, -1;
  return 0;
}

/* ---- syslog: there is no system logger; messages go to stderr as "ident[pid]: message" ---- */

static char identity[64];
static int logOptions;
static int logMask = 0xff;

ROAM_WEAK void openlog(const char *ident, int options, int facility) {
  (void)facility;
  identity[0] = '\0';
  if (ident) strncat(identity, ident, sizeof identity - 1);
  logOptions = options;
}

ROAM_WEAK void closelog(void) {
  identity[0] = '\0';
  logOptions = 0;
}

ROAM_WEAK int setlogmask(int mask) {
  int previous = logMask;
  if (mask != 0) logMask = mask;
  return previous;
}

ROAM_WEAK void vsyslog(int priority, const char *format, va_list ap) {
  if (!(logMask & LOG_MASK(LOG_PRI(priority)))) return;
  int saved = errno; /* %m names errno as it was at the call */
  if (identity[0]) fputs(identity, stderr);
  if (logOptions & LOG_PID) fprintf(stderr, "[%d]", (int)getpid());
  if (identity[0] || (logOptions & LOG_PID)) fputs(": ", stderr);
  errno = saved;
  vfprintf(stderr, format, ap);
  size_t n = strlen(format);
  if (n == 0 || format[n - 1] != '\n') fputc('\n', stderr);
  errno = saved;
}

ROAM_WEAK void syslog(int priority, const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  vsyslog(priority, format, ap);
  va_end(ap);
}

/* ---- the rest ---- */

ROAM_WEAK char *getpass(const char *prompt) {
  (void)prompt;
  return roam_unsupported_null("getpass", "WASI gives no access to a terminal to read a password from", ENOTTY);
}

/* wasi-libc's writes reach the host at once; there is nothing to flush. */
ROAM_WEAK void sync(void) {}

/* Needs CAP_SYS_CHROOT, as in a container. */
ROAM_WEAK int chroot(const char *path) {
  (void)path;
  return errno = EPERM, -1;
}

/*
 * ---- -fstack-protector (Debian's default build flags): the canary and what a smashed one does,
 * as glibc. The canary is fixed (a terminator canary: a NUL, a newline and 0xff stop string
 * overruns); a checkpoint carries it along in any case.
 */
ROAM_WEAK uintptr_t __stack_chk_guard = 0xff0a0d00u;

ROAM_WEAK void __stack_chk_fail(void) {
  static const char message[] = "*** stack smashing detected ***: terminated\n";
  write(2, message, sizeof message - 1);
  abort();
}

/*
 * Descriptors. WASI preview 1 can neither copy a descriptor nor make a pipe: dup, dup2, dup3,
 * pipe, pipe2 and fcntl(F_DUPFD) fail with ENOSYS and say so once. All of them funnel into
 * copyDescriptor() and makePipe() below, so that host support (planned) changes only those two.
 *
 * No terminal is reachable through WASI: the termios calls fail with ENOTTY, as Linux does for a
 * descriptor that is not a terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <wasi/api.h>
#include "posix.h"

/* ---- the two operations the host will provide ---- */

static int copyDescriptor(const char *function, int fd, int lowest, int flags) {
  (void)lowest, (void)flags;
  if (roam_check_fd(fd) != 0) return -1;
  return roam_unsupported(function, ROAM_NO_DESCRIPTOR_COPIES, ENOSYS);
}

static int makePipe(const char *function, int fds[2], int flags) {
  (void)fds, (void)flags;
  return roam_unsupported(function, ROAM_NO_DESCRIPTOR_COPIES, ENOSYS);
}

/* ---- dup, pipe ---- */

ROAM_WEAK int dup(int fd) { return copyDescriptor("dup", fd, 0, 0); }

ROAM_WEAK int dup2(int fd, int target) {
  if (fd == target) return roam_check_fd(fd) == 0 ? fd : -1; /* nothing to copy */
  if (target < 0) return errno = EBADF, -1;
  return copyDescriptor("dup2", fd, target, 0);
}

ROAM_WEAK int dup3(int fd, int target, int flags) {
  if (fd == target || (flags & ~O_CLOEXEC) != 0) return errno = EINVAL, -1;
  if (target < 0) return errno = EBADF, -1;
  return copyDescriptor("dup3", fd, target, flags);
}

ROAM_WEAK int pipe(int fds[2]) { return makePipe("pipe", fds, 0); }
ROAM_WEAK int pipe2(int fds[2], int flags) { return makePipe("pipe2", fds, flags); }

/*
 * fcntl: wasi-libc's commands over the same WASI calls, plus F_DUPFD/F_DUPFD_CLOEXEC on the dup
 * path. Close-on-exec has no meaning without exec: it reads as set and setting it is accepted.
 */
ROAM_WEAK int fcntl(int fd, int cmd, ...) {
  va_list ap;
  switch (cmd) {
  case F_DUPFD:
  case F_DUPFD_CLOEXEC: {
    va_start(ap, cmd);
    int lowest = va_arg(ap, int);
    va_end(ap);
    if (lowest < 0) return errno = EINVAL, -1;
    return copyDescriptor("fcntl(F_DUPFD)", fd, lowest, cmd == F_DUPFD_CLOEXEC ? O_CLOEXEC : 0);
  }
  case F_GETFD:
    return roam_check_fd(fd) == 0 ? FD_CLOEXEC : -1;
  case F_SETFD:
    return roam_check_fd(fd);
  case F_GETFL: {
    __wasi_fdstat_t stat;
    __wasi_errno_t error = __wasi_fd_fdstat_get((__wasi_fd_t)fd, &stat);
    if (error != 0) return errno = error, -1;
    int flags = stat.fs_flags;
    int reads = (stat.fs_rights_base & (__WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_READDIR)) != 0;
    int writes = (stat.fs_rights_base & __WASI_RIGHTS_FD_WRITE) != 0;
    if (reads && writes)
      flags |= O_RDWR;
    else if (reads)
      flags |= O_RDONLY;
    else if (writes)
      flags |= O_WRONLY;
    else
      flags |= O_SEARCH;
    return flags;
  }
  case F_SETFL: {
    va_start(ap, cmd);
    int flags = va_arg(ap, int);
    va_end(ap);
    __wasi_errno_t error = __wasi_fd_fdstat_set_flags((__wasi_fd_t)fd, (__wasi_fdflags_t)(flags & 0xfff));
    if (error != 0) return errno = error, -1;
    return 0;
  }
  default:
    return errno = EINVAL, -1;
  }
}

/* ---- terminals ---- */

/* EBADF for a closed descriptor, ENOTTY otherwise. A descriptor the host reports as a character
 * device may be a terminal on the host's side; its attributes are still out of reach. */
static int notATerminal(const char *function, int fd) {
  if (roam_check_fd(fd) != 0) return -1;
  if (isatty(fd)) return roam_unsupported(function, "WASI gives no access to a terminal's settings", ENOTTY);
  return errno = ENOTTY, -1;
}

ROAM_WEAK char *ttyname(int fd) {
  static char name[32];
  int error = ttyname_r(fd, name, sizeof name);
  return error == 0 ? name : (errno = error, NULL);
}

ROAM_WEAK int ttyname_r(int fd, char *name, size_t size) {
  (void)name, (void)size;
  int saved = errno;
  notATerminal("ttyname", fd);
  int error = errno;
  errno = saved;
  return error;
}

ROAM_WEAK int tcgetattr(int fd, struct termios *t) {
  (void)t;
  return notATerminal("tcgetattr", fd);
}

ROAM_WEAK int tcsetattr(int fd, int when, const struct termios *t) {
  (void)when, (void)t;
  return notATerminal("tcsetattr", fd);
}

ROAM_WEAK int tcsendbreak(int fd, int duration) {
  (void)duration;
  return notATerminal("tcsendbreak", fd);
}

ROAM_WEAK int tcdrain(int fd) { return notATerminal("tcdrain", fd); }

ROAM_WEAK int tcflush(int fd, int queue) {
  (void)queue;
  return notATerminal("tcflush", fd);
}

ROAM_WEAK int tcflow(int fd, int action) {
  (void)action;
  return notATerminal("tcflow", fd);
}

/* The cf* functions only edit a structure: they work. */

ROAM_WEAK speed_t cfgetospeed(const struct termios *t) { return t->c_cflag & CBAUD; }
ROAM_WEAK speed_t cfgetispeed(const struct termios *t) { return cfgetospeed(t); }

ROAM_WEAK int cfsetospeed(struct termios *t, speed_t speed) {
  if (speed & ~CBAUD) return errno = EINVAL, -1;
  t->c_cflag = (t->c_cflag & ~CBAUD) | speed;
  return 0;
}

ROAM_WEAK int cfsetispeed(struct termios *t, speed_t speed) { return speed ? cfsetospeed(t, speed) : 0; }
ROAM_WEAK int cfsetspeed(struct termios *t, speed_t speed) { return cfsetospeed(t, speed); }

ROAM_WEAK void cfmakeraw(struct termios *t) {
  t->c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
  t->c_oflag &= ~(tcflag_t)OPOST;
  t->c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
  t->c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
  t->c_cflag |= CS8;
  t->c_cc[VMIN] = 1;
  t->c_cc[VTIME] = 0;
}

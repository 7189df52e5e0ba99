/*
 * Descriptors. WASI preview 1 can neither copy a descriptor nor make a pipe; Roam's host adds both
 * in its `roam_posix` import module (src/wasi/host.ts), whose descriptors are captured and moved
 * with the guest like any other. dup, dup2, dup3, pipe, pipe2 and fcntl(F_DUPFD) funnel into
 * copyDescriptor() and makePipe() below.
 *
 * No terminal is reachable through WASI: the termios calls fail with ENOTTY, as Linux does for a
 * descriptor that is not a terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <wasi/api.h>
#include "posix.h"

/* ---- the two operations of Roam's host ---- */

#define ROAM_POSIX(name) __attribute__((import_module("roam_posix"), import_name(#name)))
ROAM_POSIX(fd_dup) uint16_t roam_fd_dup(int32_t fd, int32_t lowest, int32_t *result);
ROAM_POSIX(fd_dup2) uint16_t roam_fd_dup2(int32_t fd, int32_t target);
ROAM_POSIX(fd_pipe) uint16_t roam_fd_pipe(int32_t *fds);

/* A copy of fd: at exactly `target` (dup2, dup3) or at the lowest free number >= `lowest`. */
static int copyDescriptor(int fd, int lowest, int target) {
  int32_t result = target;
  uint16_t error = target >= 0 ? roam_fd_dup2(fd, target) : roam_fd_dup(fd, lowest, &result);
  if (error != 0) return errno = error, -1;
  return result;
}

static int makePipe(int fds[2], int flags) {
  if ((flags & ~(O_NONBLOCK | O_CLOEXEC)) != 0) return errno = EINVAL, -1;
  int32_t ends[2];
  uint16_t error = roam_fd_pipe(ends);
  if (error != 0) return errno = error, -1;
  if (flags & O_NONBLOCK) {
    for (int i = 0; i < 2; i++) __wasi_fd_fdstat_set_flags((__wasi_fd_t)ends[i], __WASI_FDFLAGS_NONBLOCK);
  }
  fds[0] = ends[0];
  fds[1] = ends[1];
  return 0;
}

/* ---- dup, pipe ---- */

ROAM_WEAK int dup(int fd) { return copyDescriptor(fd, 0, -1); }

ROAM_WEAK int dup2(int fd, int target) {
  if (fd == target) return roam_check_fd(fd) == 0 ? fd : -1; /* nothing to copy */
  if (target < 0) return errno = EBADF, -1;
  return copyDescriptor(fd, 0, target);
}

ROAM_WEAK int dup3(int fd, int target, int flags) {
  if (fd == target || (flags & ~O_CLOEXEC) != 0) return errno = EINVAL, -1;
  if (target < 0) return errno = EBADF, -1;
  return copyDescriptor(fd, 0, target);
}

ROAM_WEAK int pipe(int fds[2]) { return makePipe(fds, 0); }
ROAM_WEAK int pipe2(int fds[2], int flags) { return makePipe(fds, flags); }

/*
 * fcntl: wasi-libc's commands over the same WASI calls, plus F_DUPFD/F_DUPFD_CLOEXEC on the dup
 * path, and record locks (F_GETLK, F_SETLK, F_SETLKW: always granted). Close-on-exec has no
 * meaning without exec: it reads as set and setting it is accepted.
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
    return copyDescriptor(fd, lowest, -1);
  }
  case F_GETLK:
  case F_SETLK:
  case F_SETLKW: {
    /* One process: no one else can hold a record lock, so every request is granted at once. */
    va_start(ap, cmd);
    struct flock *lock = va_arg(ap, struct flock *);
    va_end(ap);
    if (roam_check_fd(fd) != 0) return -1;
    if (!lock) return errno = EFAULT, -1;
    if (lock->l_type != F_RDLCK && lock->l_type != F_WRLCK && lock->l_type != F_UNLCK) return errno = EINVAL, -1;
    if (cmd == F_GETLK) lock->l_type = F_UNLCK;
    return 0;
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

/* ---- fstat: pipes are FIFOs ---- */

ROAM_POSIX(fd_is_pipe) uint16_t roam_fd_is_pipe(int32_t fd);
int __real_fstat(int fd, struct stat *st);

/*
 * WASI has no FIFO filetype, so wasi-libc's fstat reports a pipe as a socket; the host knows
 * better. roam cc links with --wrap=fstat, so every fstat call (wasi-libc's own included) comes
 * here first.
 */
int __wrap_fstat(int fd, struct stat *st) {
  int result = __real_fstat(fd, st);
  if (result == 0 && S_ISSOCK(st->st_mode) && roam_fd_is_pipe(fd) == 0) {
    st->st_mode = (st->st_mode & ~S_IFMT) | S_IFIFO;
  }
  return result;
}

#define _GNU_SOURCE
#include "uffd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#ifdef __linux__
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC
#define USERFAULTFD_IOC 0xAA
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(USERFAULTFD_IOC, 0x00)
#endif
#endif

static const char *error_text(int err, char *buf, size_t len) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return strerror_r(err, buf, len); /* GNU variant: returns the text */
#else
  if (strerror_r(err, buf, len) != 0) snprintf(buf, len, "error %d", err);
  return buf;
#endif
}

void describe(char *out, size_t len, const char *step, int err) {
  char buf[128];
  snprintf(out, len, "%s: %s (errno %d)", step, error_text(err, buf, sizeof buf), err);
}

void fail(failure_t *f, const char *step, int err) {
  if (f) describe(f->text, sizeof f->text, step, err);
}

#ifdef __linux__
size_t host_page_size(void) {
  static size_t size;
  if (!size) {
    long ps = sysconf(_SC_PAGESIZE);
    size = ps > 0 ? (size_t)ps : 4096;
  }
  return size;
}

int open_uffd(failure_t *f, bool user_mode_only) {
  const int flags = O_CLOEXEC | O_NONBLOCK;
  char first[192] = "userfaultfd(2): not available on this architecture";
#ifdef __NR_userfaultfd
  int fd = (int)syscall(__NR_userfaultfd, flags | (user_mode_only ? UFFD_USER_MODE_ONLY : 0));
  if (fd < 0 && errno == EINVAL && user_mode_only) fd = (int)syscall(__NR_userfaultfd, flags); /* before 5.11 */
  if (fd >= 0) return fd;
  describe(first, sizeof first, "userfaultfd(2)", errno);
#endif
  char second[192];
  int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    int fd2 = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
    int err = errno;
    close(dev);
    if (fd2 >= 0) return fd2;
    describe(second, sizeof second, "ioctl(/dev/userfaultfd, USERFAULTFD_IOC_NEW)", err);
  } else {
    describe(second, sizeof second, "open /dev/userfaultfd", errno);
  }
  if (f) snprintf(f->text, sizeof f->text, "%s; %s", first, second);
  errno = ENOSYS;
  return -1;
}

int ioctl_retrying(int fd, unsigned long request, void *arg) {
  int r;
  for (int attempt = 0; attempt < 1000; attempt++) {
    r = ioctl(fd, request, arg);
    if (r == 0 || (errno != EAGAIN && errno != EINTR)) return r;
  }
  return r;
}
#endif

/* Shared by the dirty tracker and lazy restore: error text, the host page size, opening a userfaultfd. */
#ifndef ROAM_UFFD_H
#define ROAM_UFFD_H
#include <stdbool.h>
#include <stddef.h>

/* Formats "<step>: <strerror> (errno N)" into out. */
void describe(char *out, size_t len, const char *step, int err);

/* Failure of a kernel step: which step and errno, for error messages and probe reasons. */
typedef struct {
  char text[384];
} failure_t;

void fail(failure_t *f, const char *step, int err);

#ifdef __linux__
size_t host_page_size(void);

/*
 * Opens a non-blocking userfaultfd: the userfaultfd(2) syscall, else /dev/userfaultfd (Linux >= 6.1).
 * user_mode_only: faults from user mode only (enough for write-protect tracking; lazy restore must
 * also see the kernel's own accesses, e.g. write(2) from guest memory, so it asks for all).
 */
int open_uffd(failure_t *f, bool user_mode_only);

/* ioctl() again while it fails with EAGAIN or EINTR (a bounded number of times). */
int ioctl_retrying(int fd, unsigned long request, void *arg);
#endif

#endif

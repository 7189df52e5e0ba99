/*
 * wasi-libc's <fcntl.h> plus F_DUPFD and F_DUPFD_CLOEXEC with Linux's values. The layer's
 * fcntl() (runtime/posix/descriptors.c) sends them to the dup path, which fails with ENOSYS
 * until the host can copy descriptors.
 */
#include_next <fcntl.h>

#ifndef ROAM_FCNTL_H
#define ROAM_FCNTL_H

#ifndef F_DUPFD
#define F_DUPFD 0
#endif
#ifndef F_DUPFD_CLOEXEC
#define F_DUPFD_CLOEXEC 1030
#endif

#endif
